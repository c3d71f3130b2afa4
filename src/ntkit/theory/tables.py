"""Gaussian tables of one layer (theory spec, first-order-mean.md §2) at a kernel K.

The one-variable functions sigma and sigma' given to ``ntkit.gaussian`` come from
:func:`integrands`: for a scale-invariant activation they are exact piecewise monomials (so the
split quadrature rule applies), otherwise the activation's own JAX functions.
"""

from __future__ import annotations

import functools

import numpy as np

from ..activations import Activation
from ..gaussian import PiecewiseMonomial, expectation, product
from ..mehler import coefficient_tables, gram_rows

__all__ = ["integrands", "two_point", "pair_rows", "collinearity", "gram_collinearity", "collinear_pairs", "kinked", "KINK_COLLINEAR", "KINK_ACCURATE", "EXACT_COLLINEAR"]

_ROW_BLOCK = 256  # rows of a Gram matrix evaluated at once (bounds temporaries)

# Collinearity thresholds on d = (1 - rho^2) min/max of a pair's variances (:func:`collinearity`).
# Below EXACT_COLLINEAR a pair is collinear to round-off (x_b = s x_a with c_b = 0): its Stein
# tables are taken along its line (``ntkit.gaussian``, singular="range"), which is exact because
# every statistic of exactly collinear preactivations lies on that line. For a kinked activation
# the Stein tables of a nearly collinear pair grow like 1/R^3 (R^2 ~ d) and their contraction with
# the statistics cancels. Measured on relu, x and 2x with c_b -> 0 (d ~ 0.07 c_b, theta1 of the
# pair ~ 5 sqrt(d), the largest theta1 0.27): the error of theta1 is below 1e-7 of the largest for
# d > 1e-6, up to 3e-4 for d > 3.5e-8, and garbage (up to 1e5) below d ~ 1e-8. Below
# KINK_COLLINEAR such a pair is therefore computed as collinear, at that layer and every later one
# (:func:`collinear_pairs`: the 1/R^3 tables of a later layer would amplify the off-line part the
# collinear layers left out, measured up to 1e4); the error is then the departure 5 sqrt(d), at
# most 3.3e-3 of the largest theta1 at the switch.
EXACT_COLLINEAR = 1e-13  # round-off of exactly collinear pairs measured <= 2e-14; below, the error is < 5 sqrt(d) ~ 2e-6
KINK_COLLINEAR = 3e-8
KINK_ACCURATE = 1e-6  # above, the Stein form of a kinked pair loses < 1e-6 of the scale; between EXACT_COLLINEAR and here, a warning


def collinearity(kaa, kbb, kab):
    """d = (kaa kbb - kab^2) / max(kaa, kbb)^2 = (1 - rho^2) min/max: 0 for collinear samples or a zero
    variance, the squared second Cholesky pivot relative to the scale."""
    top = np.maximum(kaa, kbb)
    return (kaa * kbb - kab * kab) / np.where(top > 0, top * top, 1.0)


def gram_collinearity(K: np.ndarray) -> np.ndarray:
    """:func:`collinearity` of every pair (a, b) of the Gram matrix K."""
    var = np.diagonal(K)
    return collinearity(var[:, None], var[None, :], K)


def collinear_pairs(collinearities: list[np.ndarray]) -> list[np.ndarray]:
    """For the :func:`gram_collinearity` of successive layers, the pairs (a, b) to take on their line
    there: those with collinearity <= KINK_COLLINEAR at that layer or an earlier one of the list."""
    masks, latched = [], False
    for d in collinearities:
        latched = latched | (d <= KINK_COLLINEAR)
        masks.append(latched)
    return masks


def kinked(*funcs) -> bool:
    """True if one of the functions jumps or bends at 0 (a piecewise monomial with c_plus != c_minus)."""
    return any(isinstance(f, PiecewiseMonomial) and f.c_plus != f.c_minus for f in funcs)


@functools.lru_cache(maxsize=None)
def integrands(activation: Activation):
    """(sigma, sigma') as functions ``ntkit.gaussian`` integrates exactly for this activation."""
    if activation.scale_invariant:
        a_plus, a_minus = activation.slopes
        sigma = PiecewiseMonomial(1, a_plus, a_minus)
        dsigma = PiecewiseMonomial(0, a_plus, a_minus, at_zero=0.5 * (a_plus + a_minus))
        return sigma, dsigma
    return activation.fn, activation.derivative(1)


def two_point(activation: Activation, K: np.ndarray, nodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """S_ab = <sigma_a sigma_b>_K and P_ab = <sigma'_a sigma'_b>_K for all sample pairs."""
    K = np.asarray(K, dtype=np.float64)
    S, P = np.empty_like(K), np.empty_like(K)
    block = pair_rows(activation, K, nodes)
    for start in range(0, K.shape[0], _ROW_BLOCK):
        rows = slice(start, min(start + _ROW_BLOCK, K.shape[0]))
        S[rows], P[rows] = block(rows)
    return S, P


def pair_rows(activation: Activation, K: np.ndarray, nodes: int | None = None):
    """A function rows -> (S[rows], P[rows]) reading only K[rows] and the diagonal of K (copied now).

    Closed forms where the activation has them. Otherwise 1-D quadrature on the diagonal and,
    off it, Mehler's series with one table of Hermite coefficients per sample (``ntkit.mehler``),
    or 2-D quadrature on each marginal block [[K_aa, K_ab], [K_ab, K_bb]] when ``nodes`` is given
    or the series does not converge. Row blocks of K may be overwritten once they are evaluated.
    """
    diag = np.diagonal(K).copy()
    kernel = activation.pair_kernel()
    if kernel is not None:

        def closed(rows):
            S, P = kernel(diag[rows, None], diag[None, :], K[rows])
            return np.asarray(S), np.asarray(P)

        return closed

    sigma, dsigma = integrands(activation)
    one_d = diag[:, None, None]
    S_diag = expectation((product(sigma, sigma),), one_d, nodes=nodes)
    P_diag = expectation((product(dsigma, dsigma),), one_d, nodes=nodes)
    smooth = not isinstance(sigma, PiecewiseMonomial) and nodes is None
    series = coefficient_tables([(sigma, sigma, 0), (dsigma, dsigma, 0)], diag) if smooth else None
    root = np.sqrt(np.maximum(diag, 0.0))

    def generic(rows):
        idx = np.arange(K.shape[0])[rows]
        if series is not None:
            denom = root[idx, None] * root[None, :]
            rho = np.clip(np.where(denom > 0, K[rows] / np.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)
            S = gram_rows(series[sigma][idx], series[sigma], rho, series.terms)
            P = gram_rows(series[dsigma][idx], series[dsigma], rho, series.terms)
        else:
            blocks = np.stack(np.broadcast_arrays(diag[idx, None], K[rows], K[rows], diag[None, :]), -1).reshape(idx.size, -1, 2, 2)
            S = expectation((sigma, sigma), blocks, nodes=nodes)
            P = expectation((dsigma, dsigma), blocks, nodes=nodes)
        S, P = np.array(S), np.array(P)
        local = np.arange(idx.size)
        S[local, idx], P[local, idx] = S_diag[idx], P_diag[idx]
        return S, P

    return generic
