"""``ntkit dynamics-study``: trained MLPs against the NTK prediction (figures, netCDF, summary table)."""

from __future__ import annotations


import typer
from rich.table import Table

from ..results import require_writable
from ..studies.dynamics_study import DynamicsStudyConfig, run_dynamics_study
from ._app import app
from ._console import console, integer_list, user_errors
from ._progress import step_progress

_DEFAULT = DynamicsStudyConfig()


@app.command("dynamics-study")
def dynamics_study_command(
    activation: str = typer.Option(_DEFAULT.activation, help="Activation name."),
    c_b: float = typer.Option(_DEFAULT.c_b, "--c-b", help="Bias variance C_b (= lambda_b)."),
    c_w: float = typer.Option(_DEFAULT.c_w, "--c-w", help="Weight variance C_W (= lambda_w)."),
    depth: int = typer.Option(_DEFAULT.depth, help="Depth L (L - 1 hidden layers)."),
    widths: str = typer.Option(",".join(map(str, _DEFAULT.widths)), help="Comma-separated hidden widths."),
    seeds: int = typer.Option(_DEFAULT.seeds, help="Networks per width and parameterization."),
    steps: int = typer.Option(_DEFAULT.steps, help="Gradient-descent steps."),
    n_train: int = typer.Option(_DEFAULT.n_train, "--n-train", help="Training inputs."),
    n_test: int = typer.Option(_DEFAULT.n_test, "--n-test", help="Test inputs."),
    lr_fraction: float = typer.Option(_DEFAULT.lr_fraction, "--lr-fraction", help="eta = fraction * 2 / lambda_max."),
    seed: int = typer.Option(_DEFAULT.seed, help="Random seed (data and initializations)."),
    output: str = typer.Option(_DEFAULT.output, "--out", help="Output directory."),
) -> None:
    """Train MLPs (NTK parameterization and muP) and compare with the infinite-width NTK prediction."""
    with user_errors():
        cfg = DynamicsStudyConfig(activation=activation, c_b=c_b, c_w=c_w, depth=depth,
                                  widths=tuple(integer_list(widths, "--widths")), seeds=seeds, steps=steps,
                                  n_train=n_train, n_test=n_test, lr_fraction=lr_fraction, seed=seed, output=output)
        require_writable(cfg.output, directory=True)
    console.print(f"dynamics study: [bold]{cfg.activation}[/] depth {cfg.depth}, widths {list(cfg.widths)}, "
                  f"{cfg.seeds} seeds, {cfg.steps} steps → {cfg.output}/")
    with user_errors(), step_progress() as progress:
        ds, paths = run_dynamics_study(cfg, progress=progress)
    table = Table(title="end of training", title_justify="left")
    for column in ("width", "test error (NTK param.)", *(f"‖ΔΘ‖/‖Θ‖ {p}" for p in cfg.parameterizations)):
        table.add_column(column, justify="right")
    for w in cfg.widths:
        change = ds["ntk_change"].sel(width=w).mean("seed")
        table.add_row(str(w), f"{float(ds['test_error'].sel(width=w)):.4g}", *(f"{float(change.sel(parameterization=p)):.4g}" for p in cfg.parameterizations))
    console.print(table)
    exps = ", ".join(f"{p}: {float(ds['ntk_change_exponent'].sel(parameterization=p)):+.3f}" for p in cfg.parameterizations)
    console.print(f"log-log slopes vs width: test error {float(ds['test_error_exponent']):+.3f}; kernel change {exps}")
    console.print("wrote:")
    for name, path in paths.items():
        console.print(f"  {name:<14} {path}")
