"""Figures of the dynamics study, drawn from its Dataset alone (matplotlib, Agg backend), saved as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from .figures import save_figures  # noqa: E402

__all__ = ["DYNAMICS_FIGURES", "draw_dynamics_figures"]


def figure_loss_curves(ds: xr.Dataset):
    """Training loss vs step: actual NTK-parameterized nets (solid) and the NTK prediction (dashed), seed 0."""
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    steps = np.maximum(ds["step"].values, 0.5)
    for k, width in enumerate(ds["width"].values):
        c = f"C{k}"
        ax.plot(steps, ds["loss"].sel(parameterization="ntk", width=width, seed=0), color=c, label=f"n = {width} actual")
        ax.plot(steps, ds["pred_loss"].sel(width=width, seed=0), color=c, ls="--", label=f"n = {width} NTK prediction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gradient-descent step (step 0 drawn at 0.5)")
    ax.set_ylabel(r"train loss $\frac{1}{2}\sum_a (f_a - y_a)^2$")
    ax.set_title("loss: trained networks (NTK param.) vs infinite-width NTK prediction")
    ax.legend(fontsize=7, ncol=2)
    return fig


def figure_test_outputs(ds: xr.Dataset):
    """Predicted vs actual test outputs at the end of training, every width and seed; and the error vs width."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for k, width in enumerate(ds["width"].values):
        ax.plot(ds["pred_test"].sel(width=width).isel(step=-1).values.ravel(),
                ds["f_test"].sel(parameterization="ntk", width=width).isel(step=-1).values.ravel(), "o", ms=3, color=f"C{k}",
                label=f"n = {width}")
    lim = [float(ds["pred_test"].isel(step=-1).min()), float(ds["pred_test"].isel(step=-1).max())]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.set_xlabel("NTK prediction of the test output")
    ax.set_ylabel("trained network's test output")
    ax.set_title(f"test outputs after {int(ds['step'].values[-1])} steps")
    ax.legend(fontsize=8)
    widths = ds["width"].values
    bx.loglog(widths, ds["test_error"], "o-", label=f"measured (slope {float(ds['test_error_exponent']):.2f})")
    bx.loglog(widths, ds["test_error"].values[0] * (widths / widths[0]) ** -0.5, "k--", label=r"$n^{-1/2}$")
    bx.set_xlabel("hidden width n (neurons)")
    bx.set_ylabel("rms(actual − predicted) / rms(y) on test inputs")
    bx.set_title("agreement with the NTK prediction vs width")
    bx.legend(fontsize=8)
    return fig


def figure_ntk_change(ds: xr.Dataset):
    """Relative NTK change over training vs width in each parameterization, with log-log fits."""
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    widths = ds["width"].values
    for k, name in enumerate(ds["parameterization"].values):
        change = ds["ntk_change"].sel(parameterization=name)
        mean = change.mean("seed").values
        err = change.std("seed").values / np.sqrt(change.sizes["seed"]) if change.sizes["seed"] > 1 else None
        slope = float(ds["ntk_change_exponent"].sel(parameterization=name))
        ax.errorbar(widths, mean, yerr=err, fmt="o", color=f"C{k}", capsize=3, label=f"{name}: slope {slope:.2f}")
        fit = np.polyfit(np.log(widths), np.log(mean), 1)
        ax.plot(widths, np.exp(np.polyval(fit, np.log(widths))), color=f"C{k}", ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hidden width n (neurons)")
    ax.set_ylabel(r"$\|\Theta_T - \Theta_0\|_F / \|\Theta_0\|_F$")
    ax.set_title("how much the kernel moves during training")
    ax.legend(fontsize=8)
    return fig


def figure_spectrum(ds: xr.Dataset):
    """Eigenvalues of the NTK on the training inputs (infinite width; widest nets at init and end: identical at init
    in both parameterizations, which differ in how far the kernel moves) and per-mode learning."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    m = ds.sizes["train"]
    lam = ds["eigenvalue"].values
    ax.semilogy(np.arange(1, m + 1), lam, "k-o", ms=3, label="infinite width")
    for name, marker in zip(ds["parameterization"].values, "ox"):
        for step, fill in ((0, "init"), (-1, "end")):
            kern = ds["ntk"].sel(parameterization=name).isel(width=-1, seed=0, ntk_step=step).values[:m, :m]
            ax.semilogy(np.arange(1, m + 1), np.sort(np.linalg.eigvalsh(kern))[::-1], marker, ms=4, mfc="none" if step else None,
                        label=f"{name}, n = {int(ds['width'].values[-1])}, {fill}")
    ax.set_xlabel("mode i (by decreasing eigenvalue)")
    ax.set_ylabel(r"eigenvalue $\lambda_i$ of $\Theta$ on train inputs")
    ax.set_title("NTK spectrum")
    ax.legend(fontsize=8)
    ratio = np.abs(ds["mode_ratio_actual"].values)
    for s in range(ratio.shape[0]):
        bx.loglog(lam, ratio[s], "o", ms=4, color="C0", label="actual, widest net" if s == 0 else None)
    bx.loglog(lam, np.abs(ds["mode_ratio_predicted"]), "k-", label=r"predicted $|1 - \eta\lambda|^T$")
    bx.set_ylim(bottom=1e-12)
    bx.set_xlabel(r"eigenvalue $\lambda_i$")
    bx.set_ylabel(r"$|v_i^T (f_T - y)| / |v_i^T (f_0 - y)|$")
    bx.set_title("per-mode residual after training (spectral bias)")
    bx.legend(fontsize=8)
    return fig


DYNAMICS_FIGURES = {"loss_curves": figure_loss_curves, "test_outputs": figure_test_outputs, "ntk_change": figure_ntk_change,
                    "spectrum": figure_spectrum}


def draw_dynamics_figures(ds: xr.Dataset, out: Path) -> dict[str, Path]:
    """Save every figure as ``dynamics_<name>.png`` and ``.svg`` under ``out``; returns {name: png path}."""
    return save_figures(ds, DYNAMICS_FIGURES, out, prefix="dynamics_")
