"""``ntkit width-study``, ``ntkit show`` and ``ntkit plot``: the main job and its saved results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import xarray as xr
from rich.table import Table

from ..results import config_of, load, require_writable
from ..studies import draw_figures, load_config, run_width_study, scale_rows, scan_rows, summary_rows
from ..studies.config import WidthStudyConfig
from ._app import app
from ._console import console, fail, integer_list, user_errors
from ._progress import step_progress


def _number_or_critical(value: Optional[str], option: str):
    if value in (None, "critical"):
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{option} must be a number or 'critical', got {value!r}") from None


@app.command("width-study")
def width_study_command(
    config: Optional[Path] = typer.Argument(None, help="TOML file whose top-level keys are the study's fields (see README)."),
    activation: Optional[str] = typer.Option(None, help="Activation name [config or gelu]."),
    c_b: Optional[str] = typer.Option(None, "--c-b", help='Bias variance, or "critical".'),
    c_w: Optional[str] = typer.Option(None, "--c-w", help='Weight variance, or "critical".'),
    depth: Optional[int] = typer.Option(None, help="Depth L."),
    inputs: Optional[str] = typer.Option(None, help="Named input set (pair, triple) or a .npy/.csv file."),
    widths: Optional[str] = typer.Option(None, help="Comma-separated hidden widths, e.g. 8,16,32."),
    networks: Optional[int] = typer.Option(None, help="Sampled networks per width."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    workers: Optional[int] = typer.Option(None, help="Worker processes for sampling."),
    output: Optional[str] = typer.Option(None, "--out", help="Output directory."),
) -> None:
    """Theory vs sampled networks across widths: netCDF, figures (PNG, SVG) and a report (md, html)."""
    with user_errors():
        cfg = load_config(config, activation=activation, c_b=_number_or_critical(c_b, "--c-b"), c_w=_number_or_critical(c_w, "--c-w"),
                          depth=depth, inputs=inputs,
                          widths=None if widths is None else integer_list(widths, "--widths"), networks=networks, seed=seed,
                          workers=workers, output=output)
        require_writable(cfg.output, directory=True)
    run_and_show(cfg)


def run_and_show(cfg: WidthStudyConfig) -> None:
    console.print(f"width study of [bold]{cfg.activation}[/], depth {cfg.depth}, widths {list(cfg.widths)}, "
                  f"{cfg.networks:,} networks per width, seed {cfg.seed} → {cfg.output}/")
    with user_errors(), step_progress() as progress:
        ds, paths = run_width_study(cfg, progress=progress)
    show_tables(ds)
    console.print("wrote:")
    for name, path in paths.items():
        console.print(f"  {name:<16} {path}")


def show_tables(ds: xr.Dataset) -> None:
    """Print the agreement, scale-invariance and depth-scan tables of a width study."""
    if "width" not in ds.dims or "theta_mc" not in ds:
        fail("this file is not a width study (no width dim or theta_mc variable)")
    c = config_of(ds)
    a1, a2 = c.get("entry", (0, 1))
    table = Table(title=f"layer {int(ds['layer'].values[-1])}, entry ({a1}, {a2}): MC vs infinite width and first order "
                        "(z = (MC − prediction)/stderr)", title_justify="left")
    for column in ("width", "Θ MC ± stderr", "Θ infinite", "Θ first order", "z inf.", "z 1st", "K z inf.", "K z 1st"):
        table.add_column(column, justify="right")
    for r in summary_rows(ds):
        table.add_row(str(r["width"]), f"{r['theta_mc']:.6g} ± {r['theta_mc_stderr']:.2g}", f"{r['theta_infinite']:.6g}",
                      f"{r['theta_first_order']:.6g}", f"{r['z_theta_infinite']:+.1f}", f"{r['z_theta_first_order']:+.1f}",
                      f"{r['z_K_infinite']:+.1f}", f"{r['z_K_first_order']:+.1f}")
    console.print(table)
    scale = Table(title="diagonal Θ{1}, max over layers (0 for scale-invariant activations)", title_justify="left")
    for column in ("activation", "theory", "MC", "max|z| MC vs theory"):
        scale.add_column(column, justify="right")
    for r in scale_rows(ds):
        scale.add_row(r["activation"], f"{r['max_abs_theory']:.3g}", f"{r['max_abs_mc']:.3g}", f"{r['max_abs_z_vs_theory']:.1f}")
    console.print(scale)
    scan = Table(title="depth scan: fitted log-log exponents of V/K², D/KΘ, F/KΘ, A/Θ², B/Θ²; log-rate of K per layer",
                 title_justify="left")
    for column in ("case", "v", "d", "f", "a", "b", "log-rate K"):
        scan.add_column(column, justify="right")
    for r in scan_rows(ds):
        scan.add_row(r["case"], *(f"{r[f'exponent_{q}']:.2f}" for q in "vdfab"), f"{r['log_rate_K']:+.3f}")
    console.print(scan)


@app.command()
def show(path: Path = typer.Argument(..., help="A study file written by ntkit width-study or ntkit demo (.nc).")) -> None:
    """Print the tables of a saved width study."""
    with user_errors():
        ds = load(path)
    show_tables(ds)


@app.command()
def plot(
    path: Path = typer.Argument(..., help="A study file (.nc)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for the figures (default: figures/ beside the file)."),
) -> None:
    """Redraw the figures of a saved width study (PNG and SVG)."""
    with user_errors():
        ds = load(path)
        if "theta_mc" not in ds:
            fail(f"{path} is not a width study (no theta_mc variable)")
        paths = draw_figures(ds, out or path.parent / "figures")
    for name, p in paths.items():
        console.print(f"  {name:<16} {p}")
