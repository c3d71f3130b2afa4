"""The Typer application every command module registers on."""
import typer

app = typer.Typer(
    name="ntkit",
    help="Neural tangent kernels at finite width: kernels, 1/n corrections, sampled networks, studies.",
    no_args_is_help=True,
    add_completion=False,
)
