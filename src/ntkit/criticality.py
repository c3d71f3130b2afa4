"""Critical initialization: (c_b, c_w) with a fixed point K* where chi_par = chi_perp = 1.

On the single-input diagonal the kernel flows as K -> c_b + c_w <sigma^2>_K. Its two
susceptibilities (PDLT ch. 5) are

    chi_par(K)  = c_w d<sigma^2>_K/dK = (c_w / 2) <d^2 (sigma^2)>_K     (Stein form: no sigma''),
    chi_perp(K) = c_w <sigma'^2>_K.

Criticality asks for both to be 1 at a fixed point. With c_w = 1 / <sigma'^2>_K* this is
g(K*) = 0 for g(K) = <d^2 (sigma^2)>_K / 2 - <sigma'^2>_K (= <sigma sigma''>_K for smooth sigma),
and then c_b = K* - c_w <sigma^2>_K* must be >= 0. Three kinds of answer:

* ``scale-invariant`` (relu, leaky_relu, linear): g = 0 for every K, so c_b = 0 and
  c_w = 2 / (a_+^2 + a_-^2); every K is a fixed point (``K_star`` is ``nan``).
* ``K*=0`` (tanh, sin, erf, ...): sigma(0) = 0 and sigma'(0) != 0, c_b = 0, c_w = 1/sigma'(0)^2,
  provided the flow is attracted to 0 (K' < K for small K); chi's are their K -> 0 limits.
* ``nontrivial`` (gelu, silu, ...): a root K* > 0 of g with c_b >= 0.

Where none exists (e.g. sigmoid) :class:`NoCriticalPointError` explains why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .activations import get_activation
from .gaussian import expectation, product
from .theory.tables import integrands

__all__ = ["CriticalPoint", "NoCriticalPointError", "critical", "critical_points", "susceptibilities"]

# One-dimensional Gauss-Hermite nodes: poles of sigma at distance d from the real axis limit the
# error to ~exp(-d sqrt(2n) / sqrt(K)); 800 nodes keep silu at its K* ~ 14 at round-off (200: 1.5e-7).
_NODES = 800


class NoCriticalPointError(ValueError):
    """The activation has no (c_b >= 0, c_w > 0) with chi_par = chi_perp = 1."""


@dataclass(frozen=True)
class CriticalPoint:
    """A critical initialization. Unpacks as ``c_b, c_w = ntkit.critical("gelu")``."""

    c_b: float
    c_w: float
    K_star: float
    chi_parallel: float
    chi_perp: float
    kind: str

    def __iter__(self):
        return iter((self.c_b, self.c_w))


def susceptibilities(activation, c_w: float, K) -> tuple[np.ndarray, np.ndarray]:
    """(chi_par, chi_perp) at single-input kernel value(s) K > 0."""
    sigma, dsigma = integrands(get_activation(activation))
    cov = np.asarray(K, dtype=float).reshape(-1, 1, 1)
    second = expectation((product(sigma, sigma),), cov, derivative_order=2, nodes=_NODES)[:, 0, 0]
    perp = expectation((product(dsigma, dsigma),), cov, nodes=_NODES)
    shape = np.shape(K)
    return (0.5 * c_w * second).reshape(shape), (c_w * perp).reshape(shape)


def _moments(activation, K: np.ndarray):
    sigma, dsigma = integrands(activation)
    cov = np.asarray(K, dtype=float).reshape(-1, 1, 1)
    half_second = 0.5 * expectation((product(sigma, sigma),), cov, derivative_order=2, nodes=_NODES)[:, 0, 0]
    perp = expectation((product(dsigma, dsigma),), cov, nodes=_NODES)
    square = expectation((product(sigma, sigma),), cov, nodes=_NODES)
    return half_second, perp, square


def critical_points(activation, k_min: float = 1e-4, k_max: float = 1e3, grid: int = 400) -> list[CriticalPoint]:
    """Every critical point found: the K*=0 candidate and the roots of g on [k_min, k_max]."""
    act = get_activation(activation)
    if act.scale_invariant:
        a_plus, a_minus = act.slopes
        c_w = 2.0 / (a_plus**2 + a_minus**2)
        return [CriticalPoint(0.0, c_w, float("nan"), 1.0, 1.0, "scale-invariant")]

    found = []
    zero_point = _k_star_zero(act)
    if zero_point is not None:
        found.append(zero_point)

    ks = np.geomspace(k_min, k_max, grid)
    half_second, perp, _ = _moments(act, ks)
    g = half_second - perp
    for i in np.nonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0)[0]:
        k_star = brentq(lambda k: float(np.subtract(*_moments(act, np.array([k]))[:2])[0]), ks[i], ks[i + 1], xtol=1e-14, rtol=1e-15)
        hs, pp, sq = (v[0] for v in _moments(act, np.array([k_star])))
        c_w = 1.0 / pp
        c_b = k_star - c_w * sq
        if c_b >= -1e-12:
            found.append(CriticalPoint(float(max(c_b, 0.0)), float(c_w), float(k_star), float(c_w * hs), float(c_w * pp), "nontrivial"))
    return found


def _k_star_zero(act) -> CriticalPoint | None:
    """The K* = 0 class: sigma(0) = 0, sigma'(0) != 0, and the flow K -> c_w <sigma^2>_K shrinks small K."""
    s0 = float(act.fn(np.float64(0.0)))
    d0 = float(act.derivative(1)(np.float64(0.0)))
    if abs(s0) > 1e-14 or abs(d0) < 1e-14:
        return None
    c_w = 1.0 / d0**2
    small = np.array([1e-3])
    _, _, square = _moments(act, small)
    if not c_w * square[0] < small[0]:
        return None
    return CriticalPoint(0.0, c_w, 0.0, 1.0, 1.0, "K*=0")


def critical(activation) -> CriticalPoint:
    """The critical initialization of ``activation``: scale-invariant, else K*=0, else the first nontrivial root.

    Raises :class:`NoCriticalPointError` when none exists for c_b >= 0.
    """
    points = critical_points(activation)
    if not points:
        name = get_activation(activation).name
        raise NoCriticalPointError(
            f"{name} has no critical point: sigma(0) != 0 or sigma'(0) = 0 rules out K* = 0, and "
            "<sigma sigma''>_K has no root K* > 0 with c_b = K* - c_w <sigma^2>_K* >= 0"
        )
    return points[0]
