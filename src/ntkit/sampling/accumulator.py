"""Streaming means and co-moments of per-network observables, merged exactly (Chan et al. 1979).

An accumulator over N networks holds N, the means mu[name] of every observable and, for each
pair of aligned views (l, r) of the observables listed in :data:`COMOMENTS`, the co-moment
C = sum_networks (l - mean l)(r - mean r). Two accumulators merge as

    N = N_A + N_B,  mu = mu_A + (mu_B - mu_A) N_B / N,
    C = C_A + C_B + (l(mu_B) - l(mu_A)) (r(mu_B) - r(mu_A)) N_A N_B / N,

which is numerically stable and, merged in a fixed order, deterministic. Memory is constant in N.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["COMOMENTS", "Accumulator", "from_batch", "merge", "gram"]


def gram(obs: dict) -> np.ndarray:
    """The two-sample observables (Gz, Gt) flattened to (..., L, 2 m^2)."""
    gz, gt = obs["Gz"], obs["Gt"]
    flat = gz.shape[:-2] + (gz.shape[-2] * gz.shape[-1],)
    return np.concatenate([gz.reshape(flat), gt.reshape(flat)], axis=-1)


def _left(name: str) -> Callable:
    return lambda o: o[name][..., :, :, None, None]


def _right(name: str) -> Callable:
    return lambda o: o[name][..., None, None, :, :]


def _own(name: str) -> Callable:
    return lambda o: o[name]


#: Co-moments kept: the full covariance of (Gz, Gt) per layer, the variance of each four-sample
#: observable, and the covariances of Pzz, Pzt, Ptt with the two-sample factors of their products.
#: Each entry: (the observable it belongs to, left view, right view); a co-moment is kept when its
#: observable was computed (``statistics="mean"`` computes Gz and Gt only).
COMOMENTS: dict[str, tuple[str, Callable, Callable]] = {
    "GG": ("Gt", lambda o: gram(o)[..., :, None], lambda o: gram(o)[..., None, :]),
    **{q: (q, _own(q), _own(q)) for q in ("Pzz", "Pzt", "Ptt", "Fo", "Bo")},
    "Pzz_l": ("Pzz", _own("Pzz"), _left("Gz")),
    "Pzz_r": ("Pzz", _own("Pzz"), _right("Gz")),
    "Pzt_l": ("Pzt", _own("Pzt"), _left("Gz")),
    "Pzt_r": ("Pzt", _own("Pzt"), _right("Gt")),
    "Ptt_l": ("Ptt", _own("Ptt"), _left("Gt")),
    "Ptt_r": ("Ptt", _own("Ptt"), _right("Gt")),
}


def _comoments(observables) -> dict[str, tuple[Callable, Callable]]:
    """The (left, right) views of the co-moments kept for these observables."""
    return {key: (left, right) for key, (owner, left, right) in COMOMENTS.items() if owner in observables}


class Accumulator:
    """Count, means and co-moments of the observables of a set of networks."""

    def __init__(self, count: int, mean: dict[str, np.ndarray], comoment: dict[str, np.ndarray]):
        self.count = int(count)
        self.mean = mean
        self.comoment = comoment

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array view (``mean_<obs>``, ``comoment_<key>``) for storage."""
        return {**{f"mean_{k}": v for k, v in self.mean.items()}, **{f"comoment_{k}": v for k, v in self.comoment.items()}}

    @classmethod
    def from_arrays(cls, count: int, arrays: dict[str, np.ndarray]) -> "Accumulator":
        mean = {k[5:]: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if k.startswith("mean_")}
        comoment = {k[9:]: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if k.startswith("comoment_")}
        return cls(count, mean, comoment)


def from_batch(obs: dict[str, np.ndarray]) -> Accumulator:
    """Accumulator of the networks along axis 0 of ``obs`` (two passes: means, then centred sums)."""
    count = next(iter(obs.values())).shape[0]
    mean = {k: v.mean(axis=0) for k, v in obs.items()}
    comoment = {}
    for key, (left, right) in _comoments(obs).items():
        lc = left(obs) - left(mean)
        rc = right(obs) - right(mean)
        comoment[key] = np.sum(lc * rc, axis=0)
    return Accumulator(count, mean, comoment)


def merge(a: Accumulator | None, b: Accumulator) -> Accumulator:
    """The accumulator of the union of the networks of ``a`` and ``b`` (``a`` may be None)."""
    if a is None:
        return b
    n = a.count + b.count
    wb = b.count / n
    mean = {k: a.mean[k] + (b.mean[k] - a.mean[k]) * wb for k in a.mean}
    factor = a.count * b.count / n
    comoment = {}
    for key, (left, right) in _comoments(a.mean).items():
        dl = left(b.mean) - left(a.mean)
        dr = right(b.mean) - right(a.mean)
        comoment[key] = a.comoment[key] + b.comoment[key] + dl * dr * factor
    return Accumulator(n, mean, comoment)
