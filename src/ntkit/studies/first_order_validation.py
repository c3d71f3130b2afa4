"""Theory against sampled networks across widths: does n (MC - infinite width) converge to the 1/n prediction?

For every activation configuration, layer, tensor and entry this study compares

* the mean corrections: n (MC mean - infinite width) with K1, theta1,
* the cumulants: the MC estimate of n * cumulant (V, D, F, A, B) with the recursion,

at several widths, and fits c0 + c1 / n by weighted least squares (weights 1/stderr^2). The
first-order theory is right when c0 agrees with the prediction within its error and the
residual MC - prediction shrinks like 1/n (a constant n * residual); an error delta in a
recursion would make n * residual grow like n delta.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import xarray as xr

from ..network import MLP
from ..sampling import sample
from ..theory import finite_width

__all__ = ["ValidationCase", "DEFAULT_CASES", "FIT_MIN_WIDTH", "validate_first_order", "convergence_table", "TENSORS"]

TENSORS = ("K1", "theta1", "V", "D", "F", "A", "B")
REFERENCE_INPUTS = np.array([[1.0, 0.5, -1.2], [0.3, -0.8, 0.4], [1.6, 0.9, 0.1]])  # different norms, n_0 = 3


@dataclass(frozen=True)
class ValidationCase:
    activation: str
    c_b: float
    c_w: float
    depth: int = 4
    inputs: np.ndarray = field(default_factory=lambda: REFERENCE_INPUTS[:2])

    @property
    def label(self) -> str:
        return f"{self.activation} (c_b={self.c_b:.6g}, c_w={self.c_w:.6g})"

    def mlp(self) -> MLP:
        return MLP(depth=self.depth, activation=self.activation, c_b=self.c_b, c_w=self.c_w)


DEFAULT_CASES = (
    ValidationCase("gelu", 0.17292239075606863, 1.9830582574375484),
    ValidationCase("tanh", 0.0, 1.0),
    ValidationCase("relu", 0.0, 2.0),
)


def validate_first_order(
    case: ValidationCase,
    widths: Sequence[int],
    n_networks: int | Callable[[int], int],
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    workers: int = 1,
    progress=None,
) -> xr.Dataset:
    """Theory and MC side by side on dims (width, layer, a1..a4).

    Variables: ``<T>_theory`` and ``<T>_mc``, ``<T>_mc_stderr`` for T in :data:`TENSORS`, where
    K1/theta1 MC values are n (MC mean - infinite width). ``n_networks`` may depend on width.
    """
    mlp = case.mlp()
    theory = finite_width(mlp, case.inputs)
    infinite = theory[["K", "theta"]]  # finite_width carries the infinite-width K and theta
    per_width = []
    for width in widths:
        count = n_networks(width) if callable(n_networks) else n_networks
        checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{case.activation}_n{width}.nc"
        mc = sample(mlp, case.inputs, width=width, n_networks=count, seed=seed, checkpoint=checkpoint,
                    workers=workers, infinite=infinite, progress=progress)
        per_width.append(mc[[f"{t}{suffix}" for t in TENSORS for suffix in ("", "_stderr")]].expand_dims(width=[width]))
    mc_all = xr.concat(per_width, dim="width")
    out = xr.Dataset(coords=mc_all.coords)
    for t in TENSORS:
        out[f"{t}_theory"] = theory[t]
        out[f"{t}_mc"] = mc_all[t]
        out[f"{t}_mc_stderr"] = mc_all[f"{t}_stderr"]
    out.attrs.update({"case": case.label, "seed": seed})
    return out


FIT_MIN_WIDTH = 16  # the c0 + c1/n fits use the widths from here on


def convergence_table(ds: xr.Dataset, layers: Sequence[int] = (3, 4), min_width: int = FIT_MIN_WIDTH) -> list[dict]:
    """Per tensor and layer: the worst entry's extrapolated c0 vs theory, and n * residual at each width.

    Rows: tensor, layer, entry, theory, c0, c0_stderr, z (of c0 vs theory), and per width
    ``residual_n<w>`` = n (MC - theory) with its stderr.
    """
    rows = []
    widths = ds["width"].values
    fit = widths >= min_width
    for t in TENSORS:
        for layer in layers:
            theory = ds[f"{t}_theory"].sel(layer=layer).values
            mc = ds[f"{t}_mc"].sel(layer=layer).values  # (width, ...)
            err = ds[f"{t}_mc_stderr"].sel(layer=layer).values
            scale = np.abs(theory).max()
            if scale == 0:
                continue
            best = None
            for entry in np.ndindex(theory.shape):
                y, s = mc[(slice(None),) + entry], err[(slice(None),) + entry]
                if np.any(s[fit] <= 0) or abs(theory[entry]) < 1e-3 * scale:
                    continue
                c0, c0_err = _extrapolate(1.0 / widths[fit], y[fit], s[fit])
                z = (c0 - theory[entry]) / c0_err
                if best is None or abs(z) > abs(best["z"]):
                    best = {"tensor": t, "layer": layer, "entry": entry, "theory": theory[entry], "c0": c0, "c0_stderr": c0_err, "z": z}
                    for w, yi, si in zip(widths, y, s):
                        best[f"residual_n{w}"] = w * (yi - theory[entry])
                        best[f"residual_n{w}_stderr"] = w * si
            if best is not None:
                rows.append(best)
    return rows


def _extrapolate(inv_n: np.ndarray, y: np.ndarray, stderr: np.ndarray) -> tuple[float, float]:
    """Weighted least squares y = c0 + c1 / n; returns c0 and its standard error."""
    design = np.stack([np.ones_like(inv_n), inv_n], axis=-1)
    weights = 1.0 / stderr**2
    normal = design.T @ (weights[:, None] * design)
    cov = np.linalg.inv(normal)
    coef = cov @ design.T @ (weights * y)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))
