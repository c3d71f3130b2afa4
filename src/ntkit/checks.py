"""The paper's theorems as checks a user can run on any configuration.

* :func:`scale_invariance` — for scale-invariant sigma (relu, leaky_relu) the diagonal finite-width
  corrections vanish at every layer: K1_aa = theta1_aa = 0 (first-order-mean.md §5a).
* :func:`depth_stability` — the normalized single-input fluctuations
  v = V/K^2, d = D/(K Theta), f = F/(K Theta), a = A/Theta^2, b = B/Theta^2 grow polynomially in
  depth at criticality (the paper's stability theorem), while off criticality K and Theta
  themselves decay or grow exponentially. Rather than assert linear growth (which fails for
  GeLU's d and a, see first-order-fluctuations.md §5) it reports fitted exponents.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .network import MLP
from .theory.first_order import finite_width

__all__ = ["scale_invariance", "depth_stability", "NORMALIZED"]

NORMALIZED = ("v", "d", "f", "a", "b")


def scale_invariance(mlp: MLP, x) -> xr.Dataset:
    """Per layer, max_a |K1_aa| and max_a |theta1_aa| (zero for scale-invariant sigma), with the
    largest off-diagonal magnitudes beside them for scale."""
    ds = finite_width(mlp, x, tensors="mean")
    out = xr.Dataset(coords={"layer": ds["layer"]})
    for name in ("K1", "theta1"):
        values = ds[name].values
        diag = np.abs(np.diagonal(values, axis1=1, axis2=2))
        off = np.abs(values - np.einsum("lab,ab->lab", values, np.eye(values.shape[1])))
        out[f"{name}_diagonal_max"] = ("layer", diag.max(axis=1))
        out[f"{name}_offdiagonal_max"] = ("layer", off.reshape(len(values), -1).max(axis=1))
    out.attrs["scale_invariant"] = int(mlp.activation.scale_invariant)
    return out


def depth_stability(mlp: MLP, x, fit_window: tuple[int, int] | None = None) -> xr.Dataset:
    """Single-input depth profile of K, Theta and the normalized fluctuations v, d, f, a, b.

    ``x`` is one input (n_0,) or (1, n_0). Attributes: ``exponent_<q>``, the log-log slope of q
    against layer over ``fit_window`` (default: the last half of the layers), and
    ``log_rate_K``, ``log_rate_theta``, the per-layer slope of log K and log Theta there
    (0 for polynomial behaviour, ~log(chi) for exponential).
    """
    x = np.asarray(x, dtype=float).reshape(1, -1)
    ds = finite_width(mlp, x, tensors="all")
    K = ds["K"].values[:, 0, 0]
    theta = ds["theta"].values[:, 0, 0]
    quad = {name: ds[name].values[:, 0, 0, 0, 0] for name in ("V", "D", "F", "A", "B")}
    profile = {
        "K": K,
        "theta": theta,
        "v": quad["V"] / K**2,
        "d": quad["D"] / (K * theta),
        "f": quad["F"] / (K * theta),
        "a": quad["A"] / theta**2,
        "b": quad["B"] / theta**2,
    }
    layers = ds["layer"].values
    out = xr.Dataset({name: ("layer", value) for name, value in profile.items()}, coords={"layer": layers})
    lo, hi = fit_window or (max(2, mlp.depth // 2), mlp.depth)
    window = (layers >= lo) & (layers <= hi)
    for name in NORMALIZED:
        out.attrs[f"exponent_{name}"] = _slope(np.log(layers[window]), np.log(np.abs(profile[name][window])))
    out.attrs["log_rate_K"] = _slope(layers[window].astype(float), np.log(K[window]))
    out.attrs["log_rate_theta"] = _slope(layers[window].astype(float), np.log(theta[window]))
    out.attrs["fit_window"] = [int(lo), int(hi)]
    return out


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or not np.all(np.isfinite(y)):
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])
