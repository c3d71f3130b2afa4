"""arcsin and arccos in float64 from a rational function: elementwise arithmetic that XLA vectorizes.

XLA's CPU arcsin and arccos cost about 20 ns per float64 element; the closed-form kernels of
relu, erf and gelu spend most of their time in them. Here, for |y| <= 1/2 and t = y^2,

    arcsin(y) = y + y t R(t),   1 + t R(t) = P(t) / Q(t),

where P / Q is the [7/7] Padé approximant of the Taylor series arcsin(y) / y = sum_k c_k t^k,
c_k = (2k)! / (4^k (k!)^2 (2k + 1)): P and Q of degree 7 whose ratio matches the series through
t^14. Its coefficients are exact rationals, solved for at import. In exact arithmetic the ratio is
within 5e-18 of arcsin(y) / y on t <= 1/4 (checked in 50-digit arithmetic on 4001 points), and
written as y + y t R(t) the rounding stays at about one ulp. Against the 25-term Taylor sum
this takes about a quarter off a closed-form step of relu, erf or gelu (two short Horner chains
and one division instead of one long chain). Larger arguments use the half-angle identities, exact in floating point up to
one rounding of sqrt((1 - |x|) / 2) (1 - |x| is exact for |x| >= 1/2):

    arcsin(x) = sign(x) [pi/2 - 2 arcsin(sqrt((1 - |x|)/2))],
    arccos(x) = 2 arcsin(sqrt((1 - x)/2))  (x > 1/2),   pi - 2 arcsin(sqrt((1 + x)/2))  (x < -1/2),
    arccos(x) = pi/2 - arcsin(x)  (|x| <= 1/2),

so arccos keeps full relative accuracy near x = 1, where the relu kernel evaluates it on
correlations close to one. Arguments must lie in [-1, 1].
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import jax
import jax.numpy as jnp

__all__ = ["arcsin", "arccos"]

PADE_DEGREE = 7


def _taylor_coefficients(count: int) -> list[Fraction]:
    """c_k = (2k)! / (4^k (k!)^2 (2k + 1)), k < count: arcsin(y) / y = sum_k c_k y^(2k)."""
    return [Fraction(comb(2 * k, k), 4**k * (2 * k + 1)) for k in range(count)]


def _solve(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """Exact Gauss-Jordan elimination (the Padé system is small and nonsingular)."""
    rows = [row[:] + [b] for row, b in zip(matrix, rhs)]
    n = len(rows)
    for i in range(n):
        pivot = next(r for r in range(i, n) if rows[r][i] != 0)
        rows[i], rows[pivot] = rows[pivot], rows[i]
        for r in range(n):
            if r != i and rows[r][i] != 0:
                factor = rows[r][i] / rows[i][i]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[i])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def pade_coefficients(degree: int = PADE_DEGREE) -> tuple[list[Fraction], list[Fraction]]:
    """(p, q), q_0 = 1: sum_i p_i t^i / sum_j q_j t^j matches the Taylor series through t^(2 degree)."""
    c = _taylor_coefficients(2 * degree + 1)
    matrix = [[c[degree + k - j] if degree + k - j >= 0 else Fraction(0) for j in range(1, degree + 1)] for k in range(1, degree + 1)]
    q = [Fraction(1)] + _solve(matrix, [-c[degree + k] for k in range(1, degree + 1)])
    p = [sum(q[j] * c[i - j] for j in range(min(i, degree) + 1)) for i in range(degree + 1)]
    return p, q


_P, _Q = pade_coefficients()
_R_NUMERATOR = tuple(float(a - b) for a, b in zip(_P[1:], _Q[1:]))  # (P - Q) / t, since p_0 = q_0 = 1
_R_DENOMINATOR = tuple(float(b) for b in _Q)


def _horner(coefficients: tuple[float, ...], t):
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * t + c
    return acc


@jax.custom_jvp
def _arcsin_small(y):
    """arcsin(y) for |y| <= 1/2: y + y t R(t), t = y^2 (the Padé form above)."""
    t = y * y
    return y + y * t * (_horner(_R_NUMERATOR, t) / _horner(_R_DENOMINATOR, t))


@_arcsin_small.defjvp
def _arcsin_small_jvp(primals, tangents):
    """arcsin'(y) = 1 / sqrt(1 - y^2), not the derivative of the Padé form: autodiff through its
    Horner chains made the second derivatives of the gelu and erf closed forms (Stein tables of
    the mean path) 15x the cost of the closed form itself."""
    (y,), (dy,) = primals, tangents
    one_minus = 1.0 - y * y
    return _arcsin_small(y), dy * jnp.sqrt(one_minus) / one_minus


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
