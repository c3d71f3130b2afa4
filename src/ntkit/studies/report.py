"""The report of a width study: summary tables, Markdown and self-contained HTML.

The tables are computed from the Dataset alone (:func:`summary_rows`), so ``ntkit show`` prints
the same numbers the report states.
"""

from __future__ import annotations

import base64
import html
import platform
from pathlib import Path

import numpy as np
import xarray as xr

from ..results import config_of
from .width_study import agreement, corrected

__all__ = ["summary_rows", "scale_rows", "scan_rows", "write_report"]


def summary_rows(ds: xr.Dataset) -> list[dict]:
    """Per width, at the last layer and the plotted entry: MC mean +- stderr of K and theta, the
    infinite-width and first-order values, their z-scores, and the largest |z| over all entries."""
    a1, a2 = config_of(ds).get("entry", (0, 1))
    z = agreement(ds)
    layer = z.attrs["layer"]
    rows = []
    for width in ds["width"].values:
        row = {"width": int(width)}
        for name in ("K", "theta"):
            at = ds.sel(layer=layer, width=width, a1=a1, a2=a2)
            zw = z.sel(width=width)
            row[f"{name}_mc"] = float(at[f"{name}_mc"])
            row[f"{name}_mc_stderr"] = float(at[f"{name}_mc_stderr"])
            row[f"{name}_infinite"] = float(at[name])
            row[f"{name}_first_order"] = float(corrected(at, name, [width]).squeeze())
            row[f"z_{name}_infinite"] = float(zw[f"z_{name}_infinite"].sel(a1=a1, a2=a2))
            row[f"z_{name}_first_order"] = float(zw[f"z_{name}_first_order"].sel(a1=a1, a2=a2))
            row[f"max_abs_z_{name}_infinite"] = float(np.abs(zw[f"z_{name}_infinite"]).max())
            row[f"max_abs_z_{name}_first_order"] = float(np.abs(zw[f"z_{name}_first_order"]).max())
        rows.append(row)
    return rows


def scale_rows(ds: xr.Dataset) -> list[dict]:
    """Per activation of the scale-invariance side study: max |diagonal theta1| over layers, theory
    and MC (with the largest |MC / stderr|: consistent with zero when about 2 or less)."""
    rows = []
    for name in ds["scale_activation"].values:
        at = ds.sel(scale_activation=name)
        theory = np.abs(at["scale_theta1_diag_theory"].values)
        mc, err = at["scale_theta1_diag_mc"].values, at["scale_theta1_diag_mc_stderr"].values
        with np.errstate(invalid="ignore", divide="ignore"):
            z_theory = (mc - at["scale_theta1_diag_theory"].values) / err
        rows.append({"activation": str(name), "max_abs_theory": float(theory.max()),
                     "max_abs_mc": float(np.nanmax(np.abs(mc))) if np.isfinite(mc).any() else float("nan"),
                     "max_abs_z_vs_theory": float(np.nanmax(np.abs(z_theory[1:]))) if np.isfinite(z_theory[1:]).any() else float("nan")})
    return rows


def scan_rows(ds: xr.Dataset) -> list[dict]:
    """Per depth-scan case: fitted log-log exponents of v..b and per-layer log-rates of K, theta."""
    rows = []
    for case in ds["scan_case"].values:
        row = {"case": str(case)}
        for q in ("v", "d", "f", "a", "b"):
            row[f"exponent_{q}"] = float(ds.attrs.get(f"scan_exponent_{q}_{case}", np.nan))
        row["log_rate_K"] = float(ds.attrs[f"scan_log_rate_K_{case}"])
        row["log_rate_theta"] = float(ds.attrs[f"scan_log_rate_theta_{case}"])
        rows.append(row)
    return rows


def write_report(ds: xr.Dataset, directory: str | Path, figures: dict[str, Path]) -> tuple[Path, Path]:
    """Write ``report.md`` (figures linked) and ``report.html`` (figures embedded) in ``directory``."""
    directory = Path(directory)
    markdown = _markdown(ds, {stem: Path(path).relative_to(directory).as_posix() for stem, path in figures.items()})
    md_path = directory / "report.md"
    md_path.write_text(markdown)
    html_path = directory / "report.html"
    html_path.write_text(_html(ds, figures))
    return md_path, html_path


def _versions() -> dict[str, str]:
    import jax
    import matplotlib
    import scipy

    from .. import __version__

    return {"ntkit": __version__, "python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "xarray": xr.__version__, "matplotlib": matplotlib.__version__}


def _sections(ds: xr.Dataset) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table in the report."""
    c = config_of(ds)
    a1, a2 = c.get("entry", (0, 1))
    layer = int(ds["layer"].values[-1])
    f = lambda v: f"{v:.6g}"  # noqa: E731
    agreement_rows = []
    for r in summary_rows(ds):
        agreement_rows.append([str(r["width"])] + [
            item for name in ("K", "theta") for item in (
                f"{f(r[f'{name}_mc'])} ± {r[f'{name}_mc_stderr']:.2g}", f(r[f"{name}_infinite"]), f(r[f"{name}_first_order"]),
                f"{r[f'z_{name}_infinite']:+.1f}", f"{r[f'z_{name}_first_order']:+.1f}",
                f"{r[f'max_abs_z_{name}_infinite']:.1f} / {r[f'max_abs_z_{name}_first_order']:.1f}")])
    header = ["width"] + [h for name in ("K", "Θ") for h in (
        f"MC {name}[{a1},{a2}]", "infinite", "first order", "z (inf.)", "z (1st)", "max|z| inf./1st")]
    scale = [[r["activation"], f(r["max_abs_theory"]), f(r["max_abs_mc"]), f"{r['max_abs_z_vs_theory']:.1f}"] for r in scale_rows(ds)]
    scan = [[r["case"]] + [f"{r[f'exponent_{q}']:.2f}" for q in "vdfab"] + [f"{r['log_rate_K']:+.3f}", f"{r['log_rate_theta']:+.3f}"]
            for r in scan_rows(ds)]
    return [
        (f"Agreement at layer {layer} (z = (MC − prediction)/stderr; max|z| over all entries)", header, agreement_rows),
        (f"Scale invariance: max over layers of |diagonal Θ{{1}}| (MC at n = {ds.attrs.get('scale_width')})",
         ["activation", "theory", "MC", "max|z| MC vs theory"], scale),
        (f"Depth scan to ℓ = {int(ds['scan_layer'].values[-1])}: fitted exponents (log–log) and log-rates of K, Θ per layer",
         ["case", "v", "d", "f", "a", "b", "log-rate K", "log-rate Θ"], scan),
    ]


def _markdown(ds: xr.Dataset, figure_files: dict[str, str]) -> str:
    c = config_of(ds)
    lines = ["# ntkit width study", "", f"Seed: {ds.attrs.get('seed')} — created {ds.attrs.get('created')}", "", "## Configuration", ""]
    lines += [f"- `{key}` = `{value}`" for key, value in sorted(c.items())]
    lines += [f"- resolved C_b = {ds.attrs['c_b']:.10g}, C_W = {ds.attrs['c_w']:.10g}", "", "## Versions", ""]
    lines += [f"- {k} {v}" for k, v in _versions().items()]
    for title, header, rows in _sections(ds):
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Figures", ""]
    lines += [f"![{stem}]({name})" for stem, name in figure_files.items()]
    return "\n".join(lines) + "\n"


def _html(ds: xr.Dataset, figures: dict[str, Path]) -> str:
    c = config_of(ds)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>ntkit width study</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>",
             "<h1>ntkit width study</h1>", f"<p>Seed: {ds.attrs.get('seed')} — created {html.escape(str(ds.attrs.get('created')))}</p>",
             "<h2>Configuration</h2><ul>"]
    parts += [f"<li><code>{html.escape(k)}</code> = <code>{html.escape(str(v))}</code></li>" for k, v in sorted(c.items())]
    parts += [f"<li>resolved C_b = {ds.attrs['c_b']:.10g}, C_W = {ds.attrs['c_w']:.10g}</li></ul><h2>Versions</h2><ul>"]
    parts += [f"<li>{k} {html.escape(v)}</li>" for k, v in _versions().items()]
    parts.append("</ul>")
    for title, header, rows in _sections(ds):
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    for stem, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{stem}' src='data:image/png;base64,{data}'><figcaption>{stem}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
