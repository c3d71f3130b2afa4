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

__all__ = ["integrands", "two_point", "pair_rows"]

_ROW_BLOCK = 256  # rows of a Gram matrix evaluated at once (bounds temporaries)


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
            tables, terms = series
            denom = root[idx, None] * root[None, :]
            rho = np.clip(np.where(denom > 0, K[rows] / np.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)
            S = gram_rows(tables[sigma][idx], tables[sigma], rho, terms)
            P = gram_rows(tables[dsigma][idx], tables[dsigma], rho, terms)
        else:
            blocks = np.stack(np.broadcast_arrays(diag[idx, None], K[rows], K[rows], diag[None, :]), -1).reshape(idx.size, -1, 2, 2)
            S = expectation((sigma, sigma), blocks, nodes=nodes)
            P = expectation((dsigma, dsigma), blocks, nodes=nodes)
        S, P = np.array(S), np.array(P)
        local = np.arange(idx.size)
        S[local, idx], P[local, idx] = S_diag[idx], P_diag[idx]
        return S, P

    return generic
