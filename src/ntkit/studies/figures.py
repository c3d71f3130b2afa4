"""The figures of a width study, drawn from its Dataset alone (matplotlib, Agg backend).

Each ``figure_*`` function returns a :class:`matplotlib.figure.Figure`; :func:`draw_figures` saves
all of them as PNG and SVG. Axis labels name the quantity and its units (kernels are in units of
the input scale squared; widths are neuron counts).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ..results import config_of  # noqa: E402

__all__ = ["FIGURES", "figure_headline", "figure_corrections", "figure_scale_invariance", "figure_depth_scan", "draw_figures"]

_SYMBOL = {"K": "K", "theta": r"\Theta"}


def _entry(ds: xr.Dataset) -> tuple[int, int]:
    return tuple(config_of(ds).get("entry", (0, 1)))


def figure_headline(ds: xr.Dataset):
    """(a) An off-diagonal entry of K and Theta at the last layer vs width: MC mean +- stderr, the
    infinite-width line and the first-order curve K + K1/n."""
    a1, a2 = _entry(ds)
    layer = int(ds["layer"].values[-1])
    widths = ds["width"].values
    grid = np.geomspace(min(5, widths.min()), max(200, widths.max()), 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, name in zip(axes, ("K", "theta")):
        at = ds.sel(layer=layer, a1=a1, a2=a2)
        infinite, first = float(at[name]), float(at[f"{name}1"])
        sym = _SYMBOL[name]
        ax.errorbar(widths, at[f"{name}_mc"].values, yerr=at[f"{name}_mc_stderr"].values, fmt="o", capsize=3, label="sampled networks (mean ± stderr)")
        ax.axhline(infinite, color="k", ls="--", label="infinite width")
        ax.plot(grid, infinite + first / grid, color="C3", label=f"first order: ${sym} + {sym}^{{\\{{1\\}}}}/n$")
        ax.set_xscale("log")
        ax.set_xlabel("hidden width n (neurons)")
        ax.set_ylabel(f"${sym}^{{({layer})}}_{{{a1}{a2}}}$ (input units²)")
        ax.set_title(f"mean ${sym}$, layer {layer}, entry ({a1}, {a2})")
        ax.legend(fontsize=8)
    fig.suptitle(_title(ds))
    return fig


def figure_corrections(ds: xr.Dataset):
    """(b) n (MC mean - infinite width) vs n for the plotted entry and a diagonal one, converging
    to the predicted K1 and Theta1 (horizontal lines)."""
    a1, a2 = _entry(ds)
    layer = int(ds["layer"].values[-1])
    widths = ds["width"].values
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, name in zip(axes, ("K1", "theta1")):
        sym = _SYMBOL[name[:-1]]
        for k, (b1, b2) in enumerate(((a1, a2), (a1, a1))):
            at = ds.sel(layer=layer, a1=b1, a2=b2)
            ax.errorbar(widths * (1 + 0.03 * k), at[f"{name}_mc"].values, yerr=at[f"{name}_mc_stderr"].values, fmt="os"[k], color=f"C{k}",
                        capsize=3, label=f"n (MC − infinite), entry ({b1}, {b2})")
            ax.axhline(float(at[name]), color=f"C{k}", ls="--", label=f"prediction ${sym}^{{\\{{1\\}}}}_{{{b1}{b2}}}$")
        ax.set_xscale("log")
        ax.set_xlabel("hidden width n (neurons)")
        ax.set_ylabel(f"n (mean ${sym}$ − infinite-width ${sym}$) (input units²)")
        ax.set_title(f"${sym}^{{\\{{1\\}}}}$, layer {layer}")
        ax.legend(fontsize=8)
    fig.suptitle(_title(ds))
    return fig


def figure_scale_invariance(ds: xr.Dataset):
    """(c) Diagonal Theta1 per layer for scale-invariant activations and GeLU: theory lines, MC
    points at one width (the theorem: zero at every layer for ReLU and LeakyReLU)."""
    names = [str(n) for n in ds["scale_activation"].values]
    layers = ds["layer"].values
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.8), sharey=False, constrained_layout=True)
    for ax, name in zip(np.atleast_1d(axes), names):
        at = ds.sel(scale_activation=name, a1=0)
        ax.plot(layers, at["scale_theta1_diag_theory"].values, "-", color="C3", label=r"theory $\Theta^{\{1\}}_{00}$")
        ax.errorbar(layers, at["scale_theta1_diag_mc"].values, yerr=at["scale_theta1_diag_mc_stderr"].values, fmt="o", capsize=3,
                    label=f"n (MC − infinite), n = {ds.attrs.get('scale_width', '?')}")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("layer ℓ")
        ax.set_ylabel(r"diagonal $\Theta^{\{1\}}$ (input units²)")
        ax.set_title(f"{name} (critical)")
        ax.legend(fontsize=8)
    fig.suptitle("Finite-width correction of the NTK diagonal: zero for scale-invariant activations")
    return fig


def figure_depth_scan(ds: xr.Dataset):
    """(d) Depth scan of one input: K and Theta relative to layer 1 (exponential off criticality)
    and the normalized fluctuations v, d, f, a, b log-log (polynomial at criticality, fitted
    exponents in the legend); theory lines, MC points."""
    layers = ds["scan_layer"].values
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for case, style in zip(ds["scan_case"].values, ("-", ":")):
        at = ds.sel(scan_case=case)
        for k, q in enumerate(("K", "theta")):
            theory = at[f"scan_{q}_theory"].values
            axes[0].plot(layers, theory / theory[0], style, color=f"C{k}", label=f"{q}, {case}")
            axes[0].errorbar(layers, at[f"scan_{q}_mc"].values / theory[0], yerr=at[f"scan_{q}_mc_stderr"].values / theory[0], fmt=".",
                             color=f"C{k}", alpha=0.6)
        for k, q in enumerate(("v", "d", "f", "a", "b")):
            exponent = ds.attrs.get(f"scan_exponent_{q}_{case}", np.nan)
            label = f"{q} ∝ ℓ^{exponent:.2f}" if case == "critical" else None
            axes[1].plot(layers, np.abs(at[f"scan_{q}_theory"].values), style, color=f"C{k + 2}", label=label)
            if case == "critical":
                axes[1].errorbar(layers, np.abs(at[f"scan_{q}_mc"].values), yerr=at[f"scan_{q}_mc_stderr"].values, fmt=".", color=f"C{k + 2}", alpha=0.6)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("layer ℓ")
    axes[0].set_ylabel("K(ℓ)/K(1), Θ(ℓ)/Θ(1)")
    axes[0].set_title(f"kernels: solid at criticality, dotted at C_W × {ds.attrs.get('scan_off_factor', '?')}")
    axes[0].legend(fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("layer ℓ")
    axes[1].set_ylabel("|normalized fluctuation| (dimensionless)")
    axes[1].set_title(f"V/K², D/(KΘ), F/(KΘ), A/Θ², B/Θ²; MC at n = {ds.attrs.get('scan_width', '?')}")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Depth scan: {_title(ds)}")
    return fig


#: file stem -> figure function, in the order of the report.
FIGURES = {
    "headline": figure_headline,
    "corrections": figure_corrections,
    "scale_invariance": figure_scale_invariance,
    "depth_scan": figure_depth_scan,
}


def draw_figures(ds: xr.Dataset, directory: str | Path) -> dict[str, Path]:
    """Save every width-study figure as ``<stem>.png`` and ``<stem>.svg`` in ``directory``."""
    return save_figures(ds, FIGURES, directory)


def save_figures(ds: xr.Dataset, figures: dict, directory: str | Path, prefix: str = "") -> dict[str, Path]:
    """Draw each ``figures[stem](ds)`` and save it as ``<prefix><stem>.png`` and ``.svg`` in
    ``directory``; returns {stem: png path}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, draw in figures.items():
        fig = draw(ds)
        for suffix in ("png", "svg"):
            fig.savefig(directory / f"{prefix}{stem}.{suffix}", dpi=120)
        plt.close(fig)
        paths[stem] = directory / f"{prefix}{stem}.png"
    return paths


def _title(ds: xr.Dataset) -> str:
    c = config_of(ds)
    return f"{c.get('activation', '?')} MLP, depth {c.get('depth', '?')}, C_b = {ds.attrs.get('c_b', 0):.6g}, C_W = {ds.attrs.get('c_w', 0):.6g}"
