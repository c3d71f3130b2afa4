"""The Typer application every command module registers on."""
import typer

from ..compilation_cache import default_cache_dir, enable_compilation_cache

app = typer.Typer(name="ntkit", no_args_is_help=True, add_completion=False)  # help: the callback's docstring


@app.callback()
def main(
    compilation_cache: bool = typer.Option(True, "--compilation-cache/--no-compilation-cache",
                                           help=f"Keep compiled programs on disk for later commands ({default_cache_dir()}; "
                                                "set NTKIT_CACHE_DIR to move it)."),
) -> None:
    """Neural tangent kernels at finite width: kernels, 1/n corrections, sampled networks, studies."""
    if compilation_cache:
        enable_compilation_cache()
