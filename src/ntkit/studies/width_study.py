"""The width study: infinite width, first-order theory and sampled networks side by side.

For one network configuration and a list of hidden widths n it computes

* theory: K, theta (infinite width), K1, theta1 (the 1/n mean corrections) and V, D, F, A, B;
* Monte Carlo at every width: the mean of z z and of the NTK with standard errors, the
  estimates n (MC mean - infinite width) of K1, theta1, and of the cumulants V..B;
* two side studies the paper's theorems are about: the diagonal theta correction of
  scale-invariant activations next to GeLU (zero for the former), and a depth scan of the
  normalized single-input fluctuations at and off criticality.

Everything lands in one ``xarray.Dataset`` (see :func:`width_study`); figures and the report are
drawn from that Dataset alone, so a saved study can be redrawn without recomputing.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from ..checks import depth_stability
from ..results import with_provenance
from ..sampling import sample
from ..theory import finite_width
from .config import WidthStudyConfig

__all__ = ["width_study", "agreement", "corrected", "MEAN_TENSORS", "FLUCTUATIONS", "SCAN_QUANTITIES"]

MEAN_TENSORS = ("K", "theta")
FLUCTUATIONS = ("V", "D", "F", "A", "B")
SCAN_QUANTITIES = ("K", "theta", "v", "d", "f", "a", "b")
_MC_NAMES = ("K", "theta", "K1", "theta1") + FLUCTUATIONS

#: progress(step, done, total): called by long steps; ``step`` names the current one.
Progress = Callable[[str, int, int], None]


def width_study(config: WidthStudyConfig, checkpoint_dir: str | Path | None = None, progress: Progress | None = None) -> xr.Dataset:
    """Run the study of ``config`` (validated first). Dims: width, layer, a1..a4, and for the side
    studies ``scale_activation`` and (``scan_case``, ``scan_layer``).

    Variables: theory ``K theta K1 theta1 V D F A B``; per width ``<T>_mc``, ``<T>_mc_stderr``
    (T = K, theta, K1, theta1, V..B, where K1_mc = n_(l-1) (MC mean - K), n_0 at layer 1); side studies
    ``scale_theta1_diag_{theory,mc,mc_stderr}`` and ``scan_<q>_{theory,mc,mc_stderr}``.
    With ``checkpoint_dir`` every Monte-Carlo run checkpoints there and a rerun resumes.
    """
    config = config.validated()
    x = config.input_array()
    mlp = config.mlp()
    _step(progress, "theory: first-order tensors", 0, 1)
    theory = finite_width(mlp, x)
    infinite = theory[["K", "theta"]]  # finite_width carries the infinite-width K and theta
    _step(progress, "theory: first-order tensors", 1, 1)

    per_width = []
    for width in config.widths:
        mc = _sample(config, mlp, x, width, config.networks, config.seed, infinite, checkpoint_dir, f"main_n{width}", progress)
        per_width.append(mc.expand_dims(width=[width]))
    mc_all = xr.concat(per_width, dim="width")

    ds = theory[["K", "theta", "K1", "theta1", *FLUCTUATIONS]].copy()
    for name in _MC_NAMES:
        ds[f"{name}_mc"] = mc_all[name]
        ds[f"{name}_mc_stderr"] = mc_all[f"{name}_stderr"]
    for side in (_scale_invariance(config, x, checkpoint_dir, progress), _depth_scan(config, x, checkpoint_dir, progress)):
        ds = ds.merge(side)
        ds.attrs.update(side.attrs)
    ds.attrs["c_b"], ds.attrs["c_w"] = config.hyperparameters()
    return with_provenance(ds, {"study": "width_study", **config.as_dict()}, seed=config.seed)


def corrected(ds: xr.Dataset, name: str, width) -> xr.DataArray:
    """The first-order prediction of the mean at hidden width n: K + K1/n (or theta + theta1/n)."""
    return ds[name] + ds[f"{name}1"] / xr.DataArray(np.asarray(width, dtype=float), dims="width", coords={"width": width})


def agreement(ds: xr.Dataset, layer: int | None = None) -> xr.Dataset:
    """z-scores of the MC means against infinite width and against first order, per width.

    Returns, for T in K, theta on (width, a1, a2) at ``layer`` (default: the last):
    ``z_<T>_infinite`` = (MC - T) / stderr and ``z_<T>_first_order`` = (MC - T - T1/n) / stderr.
    """
    layer = int(ds["layer"].values[-1]) if layer is None else layer
    at = ds.sel(layer=layer)
    out = xr.Dataset(coords={"width": ds["width"], "a1": ds["a1"], "a2": ds["a2"]})
    for name in MEAN_TENSORS:
        mc, err = at[f"{name}_mc"], at[f"{name}_mc_stderr"]
        out[f"z_{name}_infinite"] = (mc - at[name]) / err
        out[f"z_{name}_first_order"] = (mc - corrected(at, name, ds["width"].values)) / err
    out.attrs["layer"] = layer
    return out


def _sample(config, mlp, x, width, networks, seed, infinite, checkpoint_dir, tag, progress) -> xr.Dataset:
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{tag}.nc"
    step = f"sampling {mlp.activation.name}, depth {mlp.depth}, width {width}"
    report = None if progress is None else partial(progress, step)
    return sample(mlp, x, width=width, n_networks=networks, seed=seed, checkpoint=checkpoint,
                  workers=config.workers, infinite=infinite, progress=report)


def _scale_invariance(config: WidthStudyConfig, x, checkpoint_dir, progress) -> xr.Dataset:
    """Diagonal theta1 per layer for each of ``config.scale_activations`` at its critical point."""
    names = list(config.scale_activations)
    theory, mc, err = [], [], []
    for k, name in enumerate(names):
        mlp = config.critical_mlp(name)
        _step(progress, f"theory: {name}", 0, 1)
        fw = finite_width(mlp, x, tensors="mean")
        _step(progress, f"theory: {name}", 1, 1)
        theory.append(np.diagonal(fw["theta1"].values, axis1=1, axis2=2))
        if config.scale_networks:
            inf = fw[["K", "theta"]]
            sampled = _sample(config, mlp, x, config.scale_width, config.scale_networks, config.seed + 1 + k, inf,
                              checkpoint_dir, f"scale_{k}_n{config.scale_width}", progress)
            mc.append(np.diagonal(sampled["theta1"].values, axis1=1, axis2=2))
            err.append(np.diagonal(sampled["theta1_stderr"].values, axis1=1, axis2=2))
        else:
            mc.append(np.full_like(theory[-1], np.nan))
            err.append(np.full_like(theory[-1], np.nan))
    dims = ("scale_activation", "layer", "a1")
    out = xr.Dataset({"scale_theta1_diag_theory": (dims, np.array(theory)), "scale_theta1_diag_mc": (dims, np.array(mc)),
                      "scale_theta1_diag_mc_stderr": (dims, np.array(err))},
                     coords={"scale_activation": names})
    out.attrs["scale_width"] = config.scale_width
    return out


def _depth_scan(config: WidthStudyConfig, x, checkpoint_dir, progress) -> xr.Dataset:
    """Single-input profiles to ``scan_depth`` at criticality and at C_W * scan_off_factor."""
    cases = {"critical": 1.0, "off_critical": config.scan_off_factor}
    single = x[:1]
    theory = {q: [] for q in SCAN_QUANTITIES}
    mc = {q: [] for q in SCAN_QUANTITIES}
    err = {q: [] for q in SCAN_QUANTITIES}
    attrs = {}
    for k, (case, factor) in enumerate(cases.items()):
        mlp = config.mlp(depth=config.scan_depth, c_w_factor=factor)
        _step(progress, f"theory: depth scan ({case})", 0, 1)
        profile = depth_stability(mlp, single)
        _step(progress, f"theory: depth scan ({case})", 1, 1)
        for q in SCAN_QUANTITIES:
            theory[q].append(profile[q].values)
            attrs[f"scan_exponent_{q}_{case}"] = profile.attrs.get(f"exponent_{q}", np.nan)
        attrs[f"scan_log_rate_K_{case}"] = profile.attrs["log_rate_K"]
        attrs[f"scan_log_rate_theta_{case}"] = profile.attrs["log_rate_theta"]
        estimates = _scan_estimates(config, mlp, single, k, checkpoint_dir, progress)
        for q in SCAN_QUANTITIES:
            mc[q].append(estimates[q][0])
            err[q].append(estimates[q][1])
    dims = ("scan_case", "scan_layer")
    out = xr.Dataset(coords={"scan_case": list(cases), "scan_layer": np.arange(1, config.scan_depth + 1)})
    for q in SCAN_QUANTITIES:
        out[f"scan_{q}_theory"] = (dims, np.array(theory[q]))
        out[f"scan_{q}_mc"] = (dims, np.array(mc[q]))
        out[f"scan_{q}_mc_stderr"] = (dims, np.array(err[q]))
    out.attrs.update(attrs)
    out.attrs.update({"scan_width": config.scan_width, "scan_off_factor": config.scan_off_factor})
    return out


def _scan_estimates(config, mlp, single, k, checkpoint_dir, progress) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MC estimates of K, theta and v = V/K^2, d = D/(K theta), ... (stderr from the numerator)."""
    nan = np.full(mlp.depth, np.nan)
    if not config.scan_networks:
        return {q: (nan, nan) for q in SCAN_QUANTITIES}
    s = _sample(config, mlp, single, config.scan_width, config.scan_networks, config.seed + 100 + k, None,
                checkpoint_dir, f"scan_{k}_n{config.scan_width}", progress)
    entry = lambda name: s[name].values.reshape(mlp.depth, -1)[:, 0]  # noqa: E731  (the single input's entry)
    K, theta = entry("K"), entry("theta")
    norms = {"v": K**2, "d": K * theta, "f": K * theta, "a": theta**2, "b": theta**2}
    out = {"K": (K, entry("K_stderr")), "theta": (theta, entry("theta_stderr"))}
    for q, norm in norms.items():
        out[q] = (entry(q.upper()) / norm, entry(f"{q.upper()}_stderr") / norm)
    return out


def _step(progress: Progress | None, step: str, done: int, total: int) -> None:
    if progress is not None:
        progress(step, done, total)
