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

__all__ = ["integrands", "two_point"]

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
    """S_ab = <sigma_a sigma_b>_K and P_ab = <sigma'_a sigma'_b>_K for all sample pairs.

    Closed forms where the activation has them; otherwise 1-D quadrature on the diagonal and 2-D
    quadrature on each off-diagonal marginal block [[K_aa, K_ab], [K_ab, K_bb]].
    """
    K = np.asarray(K, dtype=np.float64)
    m = K.shape[0]
    diag = np.diagonal(K)
    if activation.closed_form is not None:
        S = np.empty_like(K)
        P = np.empty_like(K)
        for start in range(0, m, _ROW_BLOCK):
            rows = slice(start, min(start + _ROW_BLOCK, m))
            S[rows], P[rows] = activation.pair_expectations(diag[rows, None], diag[None, :], K[rows])
        return S, P

    sigma, dsigma = integrands(activation)
    S = np.empty_like(K)
    P = np.empty_like(K)
    one_d = diag[:, None, None]
    S[np.arange(m), np.arange(m)] = expectation((product(sigma, sigma),), one_d, nodes=nodes)
    P[np.arange(m), np.arange(m)] = expectation((product(dsigma, dsigma),), one_d, nodes=nodes)
    a, b = np.triu_indices(m, 1)
    if a.size:
        blocks = np.stack([np.stack([K[a, a], K[a, b]], -1), np.stack([K[a, b], K[b, b]], -1)], -2)
        S[a, b] = S[b, a] = expectation((sigma, sigma), blocks, nodes=nodes)
        P[a, b] = P[b, a] = expectation((dsigma, dsigma), blocks, nodes=nodes)
    return S, P
