"""ntkit.trig against numpy's libm arcsin/arccos (an independent implementation) and exact values."""

from fractions import Fraction
from math import comb

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkit.trig import PADE_DEGREE, arccos, arcsin, pade_coefficients

ULP = np.finfo(np.float64).eps


def _grid():
    dense = np.linspace(-1.0, 1.0, 2_000_001)
    near_one = 1.0 - np.logspace(-16, -1, 2001)
    return np.concatenate([dense, near_one, -near_one, [0.5, -0.5, np.nextafter(0.5, 1), np.nextafter(-0.5, -1)]])


def test_arcsin_within_a_few_ulp_of_libm():
    x = _grid()
    ours, ref = np.asarray(arcsin(jnp.asarray(x))), np.arcsin(x)
    assert np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)) < 4 * ULP


def test_arccos_within_a_few_ulp_of_libm_also_near_one():
    x = _grid()
    ours, ref = np.asarray(arccos(jnp.asarray(x))), np.arccos(x)
    assert np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)) < 4 * ULP
    assert arccos(jnp.float64(1.0)) == 0.0


def test_pade_approximant_matches_the_taylor_series_through_its_order():
    """Q(t) S(t) - P(t) vanishes through t^(2 degree) in exact rational arithmetic, and not beyond, for
    S(t) = arcsin(y) / y = sum_k (2k)! / (4^k (k!)^2 (2k + 1)) t^k (t = y^2, written out here)."""
    degree = PADE_DEGREE
    p, q = pade_coefficients(degree)
    c = [Fraction(comb(2 * k, k), 4**k * (2 * k + 1)) for k in range(2 * degree + 2)]
    product = [sum(q[j] * c[i - j] for j in range(min(i, degree) + 1)) for i in range(2 * degree + 2)]
    residual = [product[i] - (p[i] if i <= degree else 0) for i in range(2 * degree + 2)]
    assert len(p) == len(q) == degree + 1 and q[0] == p[0] == 1
    assert all(r == 0 for r in residual[: 2 * degree + 1]) and residual[2 * degree + 1] != 0


def test_exact_values():
    np.testing.assert_allclose(np.asarray(arcsin(jnp.array([0.0, 0.5, 1.0, -1.0]))), [0.0, np.pi / 6, np.pi / 2, -np.pi / 2], rtol=2 * ULP)
    np.testing.assert_allclose(np.asarray(arccos(jnp.array([0.0, 0.5, -0.5, -1.0]))), [np.pi / 2, np.pi / 3, 2 * np.pi / 3, np.pi], rtol=2 * ULP)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1.0, 1.0, allow_nan=False))
def test_identities_at_any_point(x):
    s, c = float(arcsin(jnp.float64(x))), float(arccos(jnp.float64(x)))
    assert abs(s + c - np.pi / 2) < 8 * ULP
    assert abs(np.sin(s) - x) < 4 * ULP


def test_derivatives_by_autodiff_match_one_over_sqrt_one_minus_x_squared():
    """The closed-form kernels are differentiated by JAX (Stein forms): arcsin' = 1 / sqrt(1 - x^2),
    including at x = 0 and across the branch points +-1/2; arcsin'' too."""
    x = np.concatenate([np.linspace(-0.999, 0.999, 4001), [0.0, 0.5, -0.5]])
    d1 = np.asarray(jax.vmap(jax.grad(arcsin))(jnp.asarray(x)))
    np.testing.assert_allclose(d1, 1 / np.sqrt(1 - x**2), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(arccos))(jnp.asarray(x))), -1 / np.sqrt(1 - x**2), rtol=1e-12)
    d2 = np.asarray(jax.vmap(jax.grad(jax.grad(arcsin)))(jnp.asarray(x)))
    np.testing.assert_allclose(d2, x / (1 - x**2) ** 1.5, rtol=1e-10, atol=1e-12)
