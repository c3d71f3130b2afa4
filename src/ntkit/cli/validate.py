"""``ntkit validate``: the first-order theory against sampled networks, written as a report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..results import require_writable
from ..studies.validation_report import DEFAULT_WIDTHS, default_networks, run_validation
from ._app import app
from ._console import console, integer_list, user_errors
from ._progress import step_progress


@app.command()
def validate(
    out: Path = typer.Option(Path("docs"), "--out", help="Directory for validation.md and validation/ (data, figure)."),
    widths: str = typer.Option(",".join(map(str, DEFAULT_WIDTHS)), help="Comma-separated hidden widths."),
    networks: Optional[int] = typer.Option(None, help="Networks per width (default: grows with width, see docs)."),
    seed: int = typer.Option(0, help="Random seed."),
    workers: int = typer.Option(1, help="Worker processes for sampling."),
) -> None:
    """GeLU, tanh and ReLU at criticality, depth 4: n (MC - infinite width) and n x cumulants vs the 1/n theory."""
    with user_errors():
        width_list = integer_list(widths, "--widths")
        if min(width_list) < 1:
            raise ValueError(f"--widths must be positive, got {widths!r}")
        if networks is not None and networks < 2:
            raise ValueError(f"--networks must be >= 2, got {networks}")
        require_writable(out, directory=True)
        with step_progress() as progress:
            path, rows = run_validation(out, width_list, default_networks if networks is None else networks, seed=seed, workers=workers,
                                        progress=progress)
    table = Table(title="worst entry per tensor and layer: extrapolated c0 vs prediction", title_justify="left")
    for column in ("case", "tensor", "layer", "prediction", "c0 ± stderr", "z"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["case"], r["tensor"], str(r["layer"]), f"{r['theory']:.5g}", f"{r['c0']:.5g} ± {r['c0_stderr']:.2g}", f"{r['z']:+.2f}")
    console.print(table)
    console.print(f"wrote {path}")
