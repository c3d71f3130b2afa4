"""arcsin and arccos in float64 from a power series: elementwise arithmetic that XLA vectorizes.

XLA's CPU arcsin and arccos cost about 20 ns per float64 element; the closed-form kernels of
relu, erf and gelu spend most of their time in them. Here

    arcsin(y) = sum_k c_k y^(2k+1),   c_k = (2k)! / (4^k (k!)^2 (2k + 1)),   |y| <= 1/2,

summed by Horner's rule over K = 25 terms: the first omitted term is below c_K 4^-K / (1 - 1/4)
= 1e-17 relative to y. Larger arguments use the half-angle identities, exact in floating point
up to one rounding of sqrt((1 - |x|) / 2) (1 - |x| is exact for |x| >= 1/2):

    arcsin(x) = sign(x) [pi/2 - 2 arcsin(sqrt((1 - |x|)/2))],
    arccos(x) = 2 arcsin(sqrt((1 - x)/2))  (x > 1/2),   pi - 2 arcsin(sqrt((1 + x)/2))  (x < -1/2),
    arccos(x) = pi/2 - arcsin(x)  (|x| <= 1/2),

so arccos keeps full relative accuracy near x = 1, where the relu kernel evaluates it on
correlations close to one. Arguments must lie in [-1, 1].
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import jax.numpy as jnp

__all__ = ["arcsin", "arccos"]

_TERMS = 25
_COEFFICIENTS = tuple(float(Fraction(comb(2 * k, k), 4**k * (2 * k + 1))) for k in range(_TERMS))


def _arcsin_small(y):
    """arcsin(y) for |y| <= 1/2 by the power series."""
    t = y * y
    acc = _COEFFICIENTS[-1]
    for c in reversed(_COEFFICIENTS[:-1]):
        acc = acc * t + c
    return y * acc


def _reduced(x):
    """(|x| > 1/2, arcsin of the series argument: x itself or sqrt((1 - |x|) / 2)).

    The small branch uses x, not |x|, so that autodiff gives arcsin'(0) = 1 (abs has derivative 0 there)."""
    large = jnp.abs(x) > 0.5
    y = jnp.where(large, jnp.sqrt(0.5 * (1.0 - jnp.abs(x))), x)
    return large, _arcsin_small(y)


def arcsin(x):
    """arcsin(x) for x in [-1, 1], float64 to a few ulp; differentiable by JAX."""
    large, s = _reduced(x)
    return jnp.where(large, jnp.sign(x) * (0.5 * jnp.pi - 2.0 * s), s)


def arccos(x):
    """arccos(x) for x in [-1, 1], float64 to a few ulp (relative, also near x = 1); differentiable by JAX."""
    large, s = _reduced(x)
    return jnp.where(large, jnp.where(x > 0, 2.0 * s, jnp.pi - 2.0 * s), 0.5 * jnp.pi - s)
