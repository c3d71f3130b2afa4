"""Gaussian expectations against results derived independently of ``ntkit.gaussian``.

Oracles: the arc-cosine kernels written through |z| and sign(z) (Sheppard's formula), Williams'
arcsine kernel for erf, Isserlis' theorem, orthant probabilities, the characteristic function
(products of cosines), Stein's lemma checked against the derivatives themselves, and
scipy.integrate.quad in one dimension.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jax.scipy.special import erf as jerf
from numpy.polynomial import Polynomial
from scipy import integrate
from scipy.special import erf as np_erf
from scipy.stats import multivariate_normal, norm

from ntkit.gaussian import PiecewiseMonomial, expectation, expectations, one_variable_expectations, piecewise_pair, product, safe_cholesky

RELU = PiecewiseMonomial(1, 1.0, 0.0)
STEP = PiecewiseMonomial(0, 1.0, 0.0)
LINEAR = PiecewiseMonomial(1, 1.0, 1.0)
SQUARE = PiecewiseMonomial(2, 1.0, 1.0)

COVS_2 = np.array(
    [
        [[1.0, 0.3], [0.3, 0.8]],
        [[0.5, -0.45], [-0.45, 1.2]],
        [[2.0, 1.8], [1.8, 2.0]],
        [[0.2, 0.0], [0.0, 1.7]],
        [[1.5, -1.0], [-1.0, 1.1]],
    ]
)


def _psd(k, entries, jitter):
    a = np.asarray(entries, dtype=float).reshape(k, k)
    return a @ a.T + jitter * np.eye(k)


def psd_matrices(k, bound=1.0, jitter=0.05):
    """Random positive definite k x k matrices A A^T + jitter I with |A_ij| <= bound."""
    entry = st.floats(-bound, bound, allow_nan=False)
    return st.lists(entry, min_size=k * k, max_size=k * k).map(lambda e: _psd(k, e, jitter))


def covariances_2(max_correlation=0.9):
    """Random 2 x 2 covariances with variances in [0.05, 4] and |correlation| <= max_correlation."""
    variance = st.floats(0.05, 4.0)
    rho = st.floats(-max_correlation, max_correlation)

    def build(v1, v2, r):
        c = r * math.sqrt(v1 * v2)
        return np.array([[v1, c], [c, v2]])

    return st.builds(build, variance, variance, rho)


def _angle(cov):
    s = np.sqrt(cov[..., 0, 0] * cov[..., 1, 1])
    return s, np.arccos(np.clip(cov[..., 0, 1] / s, -1, 1))


def leaky_pair_closed_form(slope, cov):
    """sigma = c z + d |z| with c = (1+a)/2, d = (1-a)/2, and sigma' = c + d sign(z):
    <|z1||z2|> = (2s/pi)(sin t + (pi/2 - t) cos t), <sign z1 sign z2> = 1 - 2t/pi, odd cross terms vanish."""
    c, d = (1 + slope) / 2, (1 - slope) / 2
    s, t = _angle(cov)
    abs_abs = 2 * s / np.pi * (np.sin(t) + (np.pi / 2 - t) * np.cos(t))
    return c * c * cov[..., 0, 1] + d * d * abs_abs, c * c + d * d * (1 - 2 * t / np.pi)


def quad_1d(f, variance):
    """<f(z)>, z ~ N(0, variance), by adaptive quadrature of numpy f."""
    sd = math.sqrt(variance)
    value, _ = integrate.quad(lambda u: f(sd * u) * norm.pdf(u), -40, 40, epsabs=1e-15, epsrel=1e-12, limit=400)
    return value


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3, -0.5, 1.0])
def test_arc_cosine_kernels(slope):
    sigma = PiecewiseMonomial(1, 1.0, slope)
    dsigma = PiecewiseMonomial(0, 1.0, slope)
    ss, dd = leaky_pair_closed_form(slope, COVS_2)
    np.testing.assert_allclose(expectation((sigma, sigma), COVS_2), ss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(expectation((dsigma, dsigma), COVS_2), dd, rtol=1e-12, atol=1e-13)


@settings(deadline=None, max_examples=15)
@given(covariances_2())
def test_relu_arc_cosine_random_covariances(cov):
    ss, dd = leaky_pair_closed_form(0.0, cov)
    scale = math.sqrt(cov[0, 0] * cov[1, 1])
    np.testing.assert_allclose(expectation((RELU, RELU), cov), ss, rtol=1e-12, atol=1e-13 * scale)
    np.testing.assert_allclose(expectation((STEP, STEP), cov), dd, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("rho", [0.999, 0.9999, -0.9999, 1 - 1e-8])
def test_arc_cosine_kernels_nearly_collinear(rho):
    """Deep ReLU networks drive correlations towards 1; the 2-D rule must stay accurate there.

    (The nested split rule, before the polar rule replaced it for k = 2, was off by 1.8e-5 at
    rho = 0.999 and 2.3e-4 at rho = 0.9999 for <step step>.)"""
    cov = np.array([[1.0, rho], [rho, 1.0]])
    ss, dd = leaky_pair_closed_form(0.0, cov)
    np.testing.assert_allclose(expectation((RELU, RELU), cov), ss, rtol=0, atol=1e-11)
    np.testing.assert_allclose(expectation((STEP, STEP), cov), dd, rtol=0, atol=1e-11)


def test_erf_arcsine_kernel():
    """Williams (1997): <erf erf> = (2/pi) asin(2 k12 / sqrt(q)), <erf' erf'> = (4/pi) / sqrt(q - 4 k12^2)."""
    q = (1 + 2 * COVS_2[:, 0, 0]) * (1 + 2 * COVS_2[:, 1, 1])
    k12 = COVS_2[:, 0, 1]
    derf = lambda z: 2 / math.sqrt(math.pi) * jnp.exp(-z * z)  # noqa: E731
    expected = 2 / np.pi * np.arcsin(2 * k12 / np.sqrt(q)), 4 / np.pi / np.sqrt(q - 4 * k12**2)
    for nodes in (None, 96):  # the default rule for many pairs (Mehler series), and graded Gauss–Legendre quadrature
        np.testing.assert_allclose(expectation((jerf, jerf), COVS_2, nodes=nodes), expected[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(expectation((derf, derf), COVS_2, nodes=nodes), expected[1], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- Stein forms

SMOOTH = {
    "sin": (jnp.sin, jnp.cos, lambda z: -jnp.sin(z), lambda z: -jnp.cos(z)),
    "tanh": (jnp.tanh, lambda z: 1 - jnp.tanh(z) ** 2, None, None),
    "gelu": (lambda z: z * 0.5 * (1 + jerf(z / math.sqrt(2))), None, None, None),
}


def _derivatives(name):
    """g, g', g'', g''' (autodiff where not written out: independent of ntkit's own derivatives)."""
    funcs = list(SMOOTH[name])
    scalar = funcs[0]
    for k in range(1, 4):
        if funcs[k] is None:
            d = scalar
            for _ in range(k):
                d = jax.grad(d)
            funcs[k] = jnp.vectorize(d)
    return funcs


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_stein_first_and_second_order_equal_direct_derivatives(name):
    g, g1, g2, _ = _derivatives(name)
    h, h1, h2, _ = _derivatives("sin")
    first = expectation((g, h), COVS_2[:2], derivative_order=1)
    np.testing.assert_allclose(first[:, 0], expectation((g1, h), COVS_2[:2]), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(first[:, 1], expectation((g, h1), COVS_2[:2]), rtol=1e-10, atol=1e-13)
    second = expectation((g, h), COVS_2[:2], derivative_order=2)
    np.testing.assert_allclose(second[:, 0, 1], expectation((g1, h1), COVS_2[:2]), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(second[:, 1, 0], second[:, 0, 1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(second[:, 0, 0], expectation((g2, h), COVS_2[:2]), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(second[:, 1, 1], expectation((g, h2), COVS_2[:2]), rtol=1e-10, atol=1e-13)


@settings(deadline=None, max_examples=10)
@given(psd_matrices(2, bound=1.0, jitter=0.1))
def test_stein_fourth_order_two_samples(cov):
    """<d_a d_a d_b d_b (g_a h_b)> = <g''_a h''_b>, <d_a^3 d_b (g_a h_b)> = <g'''_a h'_b>."""
    g, g1, g2, g3 = _derivatives("tanh")
    h, h1, h2, _ = _derivatives("sin")
    fourth = expectation((g, h), cov, derivative_order=4)
    # the third derivative of tanh is sharply peaked: the direct side needs many nodes (384^2: ~1e-14 here)
    np.testing.assert_allclose(fourth[0, 0, 1, 1], expectation((g2, h2), cov, nodes=384), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(fourth[0, 1, 0, 1], fourth[0, 0, 1, 1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fourth[0, 0, 0, 1], expectation((g3, h1), cov, nodes=384), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("variance", [0.3, 1.0, 2.5])
def test_stein_fourth_order_one_dimension(variance):
    """<d^4 (g^2)>_K against (g^2)'''' integrated directly.

    sin: (sin^2)'''' = -8 cos 2z and <cos 2z> = exp(-2K). tanh: with t = tanh z, d/dz p(t) = p'(t) (1 - t^2),
    so (t^2)'''' is a polynomial in t, integrated with scipy.integrate.quad."""
    sin2 = expectation((lambda z: jnp.sin(z) ** 2,), [[variance]], derivative_order=4)[0, 0, 0, 0]
    np.testing.assert_allclose(sin2, -8 * math.exp(-2 * variance), rtol=1e-11)
    poly = Polynomial([0.0, 0.0, 1.0])
    for _ in range(4):
        poly = poly.deriv() * Polynomial([1.0, 0.0, -1.0])
    direct = quad_1d(lambda z: poly(np.tanh(z)), variance)
    stein = expectation((lambda z: jnp.tanh(z) ** 2,), [[variance]], derivative_order=4)[0, 0, 0, 0]
    np.testing.assert_allclose(stein, direct, rtol=2e-9, atol=1e-12)  # measured 6e-10 at K = 2.5 (tanh's poles)


def test_one_variable_expectations_against_closed_forms():
    """<f^(r)(z)>, z ~ N(0, v): cos^(r) gives (-1)^(r/2) e^(-v/2) for even r, sin' gives e^(-v/2);
    relu^2 = z^2 (z > 0) gives v/2 and (relu^2)'' = 2 step(z) gives 1; at v = 0 the values are
    f(0) and derivatives vanish (along the range: none), as in ``expectation(..., singular="range")``."""
    v = np.array([0.0, 0.3, 1.0, 4.0, 25.0])
    cos, sin = (lambda z: jnp.cos(z)), (lambda z: jnp.sin(z))
    values = one_variable_expectations([(cos, 0), (cos, 2), (cos, 4), (sin, 1), (sin, 0)], v)
    decay = np.exp(-v / 2)
    for got, want in zip(values, [decay, -decay, decay, decay, 0 * v]):
        np.testing.assert_allclose(got[1:], want[1:], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose([got[0] for got in values], [1.0, 0.0, 0.0, 0.0, 0.0], rtol=1e-15, atol=0.0)
    square = PiecewiseMonomial(2, 1.0, 0.0)
    plain, second = one_variable_expectations([(square, 0), (square, 2)], v)
    np.testing.assert_allclose(plain, v / 2, rtol=1e-14)
    np.testing.assert_allclose(second, np.where(v > 0, 1.0, 0.0), rtol=1e-14)
    tanh2 = lambda z: jnp.tanh(z) ** 2  # noqa: E731
    for r, got in zip((1, 2, 4), one_variable_expectations([(tanh2, 1), (tanh2, 2), (tanh2, 4)], v)):
        want = expectation((tanh2,), v[:, None, None], r, singular="range").reshape(v.size, -1)[:, 0]
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="negative variance"):
        one_variable_expectations([(cos, 0)], [-1.0])
    with pytest.raises(ValueError, match="one rule"):
        one_variable_expectations([(cos, 0), (square, 0)], v)
    with pytest.raises(ValueError, match="0, 1, 2 or 4"):
        one_variable_expectations([(cos, 3)], v)


def test_stein_forms_with_kinks_need_no_delta_functions():
    """relu: <d_a d_b (relu_a relu_b)> = <step_a step_b> = (pi - t) / 2pi and
    <d_a^2 (relu_a relu_b)> = <delta(z_a) relu(z_b)> = sqrt(det K) / (2 pi K_aa)."""
    second = expectation((RELU, RELU), COVS_2, derivative_order=2)
    s, t = _angle(COVS_2)
    det = COVS_2[:, 0, 0] * COVS_2[:, 1, 1] - COVS_2[:, 0, 1] ** 2
    np.testing.assert_allclose(second[:, 0, 1], (np.pi - t) / (2 * np.pi), rtol=1e-12)
    np.testing.assert_allclose(second[:, 0, 0], np.sqrt(det) / (2 * np.pi * COVS_2[:, 0, 0]), rtol=1e-9)  # measured 2e-10
    np.testing.assert_allclose(second[:, 1, 1], np.sqrt(det) / (2 * np.pi * COVS_2[:, 1, 1]), rtol=1e-9)
    # one dimension: (relu^2)'' = 2 step, so <d^2 relu^2> = 1 whatever K
    one_d = expectation((product(RELU, RELU),), np.array([[[0.3]], [[2.0]]]), derivative_order=2)
    np.testing.assert_allclose(one_d[:, 0, 0], 1.0, rtol=1e-13)


@settings(deadline=None, max_examples=8)
@given(psd_matrices(3, bound=1.0, jitter=0.3))
def test_stein_three_samples(cov):
    """<d_1 d_2 (g1 g2 g3)> = <g1' g2' g3> with three different smooth (entire) factors."""
    s, s1, _, _ = _derivatives("sin")
    g, g1, _, _ = _derivatives("gelu")
    c = jnp.cos
    second = expectation((s, g, c), cov, derivative_order=2)
    np.testing.assert_allclose(second[0, 1], expectation((s1, g1, c), cov), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(second[1, 0], second[0, 1], rtol=1e-10, atol=1e-12)


def test_stein_four_samples():
    """<d_1 d_2 d_3 d_4 prod sin(z_s)> = <prod cos(z_s)> = (1/8) sum over signs of exp(-v.K.v / 2) (measured 6e-16)."""
    cov = _psd(4, np.linspace(-0.6, 0.7, 16), 0.2)
    fourth = expectation((jnp.sin,) * 4, cov, derivative_order=4)
    np.testing.assert_allclose(fourth[0, 1, 2, 3], _cos_product(cov), rtol=1e-12)
    np.testing.assert_allclose(fourth[3, 1, 0, 2], fourth[0, 1, 2, 3], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- k = 3, 4


def _cos_product(cov):
    """<prod_s cos z_s> = 2^-(k-1) sum_{signs} exp(-v.K.v / 2), v = (1, +-1, ...)."""
    k = cov.shape[-1]
    total = 0.0
    for signs in np.ndindex(*([2] * (k - 1))):
        v = np.array([1.0] + [1.0 - 2.0 * s for s in signs])
        total += math.exp(-0.5 * v @ cov @ v)
    return total / 2 ** (k - 1)


@settings(deadline=None, max_examples=10)
@given(psd_matrices(4, bound=1.0, jitter=0.3))
def test_isserlis_four_samples(cov):
    expected = cov[0, 1] * cov[2, 3] + cov[0, 2] * cov[1, 3] + cov[0, 3] * cov[1, 2]
    scale = np.max(np.diag(cov)) ** 2
    np.testing.assert_allclose(expectation((LINEAR,) * 4, cov), expected, rtol=1e-10, atol=1e-13 * scale)
    np.testing.assert_allclose(expectation((lambda z: z,) * 4, cov), expected, rtol=1e-10, atol=1e-13 * scale)


def test_isserlis_three_samples():
    cov = _psd(3, [0.9, 0.1, -0.3, 0.4, 1.0, 0.2, -0.5, 0.3, 0.8], 0.1)
    expected = cov[0, 1] * cov[2, 2] + 2 * cov[0, 2] * cov[1, 2]  # <z1 z2 z3^2>
    np.testing.assert_allclose(expectation((LINEAR, LINEAR, SQUARE), cov), expected, rtol=1e-12)
    np.testing.assert_allclose(expectation((lambda z: z, lambda z: z, lambda z: z * z), cov), expected, rtol=1e-12)


def _isserlis(cov, indices):
    """E[prod_i z_indices[i]] for z ~ N(0, cov): the sum over pairings of products of covariances."""
    if not indices:
        return 1.0
    first, rest = indices[0], indices[1:]
    return sum(cov[first, rest[i]] * _isserlis(cov, rest[:i] + rest[i + 1 :]) for i in range(len(rest)))


@pytest.mark.parametrize("rho", [0.9, 0.99, 0.999])
def test_isserlis_highly_correlated_piecewise(rho):
    """For strongly correlated samples the later factors' kinks t lie far out. The piecewise rule
    cut only at t (two halves of 32 Gauss–Legendre nodes, up to 18 standard deviations long) was
    off by 1.5e-9 (degree 4) and 7.5e-9 (degree 6) of the scale at rho = 0.99 and 0.999, near the
    1e-8 contract for ReLU-class integrands; cut also at +-1.5, +-4.5 it is within 1e-13 and 8e-12."""
    cov = (np.full((4, 4), rho) + (1 - rho) * np.eye(4)) * np.sqrt(np.outer(np.arange(1, 5), np.arange(1, 5)))
    for funcs, indices in (((LINEAR,) * 4, [0, 1, 2, 3]), ((SQUARE, LINEAR, SQUARE, LINEAR), [0, 0, 1, 2, 2, 3])):
        scale = np.sqrt(np.prod(np.diag(cov)[indices]))
        tolerance = 1e-12 if len(indices) == 4 else 5e-11
        np.testing.assert_allclose(expectation(funcs, cov), _isserlis(cov, indices), rtol=0, atol=tolerance * scale)


@pytest.mark.parametrize("k", [3, 4])
def test_cosine_products(k):
    """Entire integrands, variances ~1.6 to 2.5: measured 3e-16 (k = 3) and 7e-16 (k = 4). The graded 3-D
    rule of 64 nodes had 2e-12, tensor Gauss–Hermite (k = 4) 1e-12."""
    cov = _psd(k, np.cos(np.arange(k * k)), 0.1)
    np.testing.assert_allclose(expectation((jnp.cos,) * k, cov), _cos_product(cov), rtol=1e-13)


def _erf_prime(z):
    return (2 / math.sqrt(math.pi)) * jnp.exp(-z * z)


def _erf_erf_erf_primes(cov):
    """<erf(z_1) erf(z_2) erf'(z_3) ... erf'(z_k)> in closed form: the Gaussian factors erf'(z_j) =
    (2/sqrt(pi)) exp(-z_j^2) turn N(0, K) into N(0, K~) times sqrt(det K~ / det K),
    K~^-1 = K^-1 + 2 sum_(j >= 3) e_j e_j^T, and the remaining <erf erf> under the (1, 2) block
    of K~ is Williams' arcsine kernel."""
    k = cov.shape[0]
    tilde = np.linalg.inv(np.linalg.inv(cov) + np.diag([0.0, 0.0] + [2.0] * (k - 2)))
    a, b, c = tilde[0, 0], tilde[1, 1], tilde[0, 1]
    arcsine = (2 / math.pi) * math.asin(2 * c / math.sqrt((1 + 2 * a) * (1 + 2 * b)))
    return (2 / math.sqrt(math.pi)) ** (k - 2) * math.sqrt(np.linalg.det(tilde) / np.linalg.det(cov)) * arcsine


@pytest.mark.parametrize("variance, rho, rtol", [(1.0, 0.99, 1e-12), (3.0, 0.9, 1e-12), (3.0, 0.99, 1e-12), (10.0, 0.99, 1e-12),
                                                 (100.0, 0.99, 1e-11)])
def test_three_saturating_factors_at_large_variance(variance, rho, rtol):
    """erf at a large variance is nearly a step and erf' a narrow bump: the graded rule follows each
    outer factor's crossing and the last variable is tabulated (measured 7e-16, 6e-14, 3e-15, 2e-16,
    2e-12). The graded 3-D rule of 64 nodes had 2.5e-11, 1.2e-10, 6.5e-10, 4.2e-8, 3.7e-6, and
    48-node Gauss–Hermite 2.1e-7, 3.5e-5, 1.4e-3, 8.2e-2."""
    corr = np.array([[1.0, rho, 0.98 * rho], [rho, 1.0, rho], [0.98 * rho, rho, 1.0]])
    cov = variance * corr * np.outer([1.0, 1.3, 0.8], [1.0, 1.3, 0.8])
    np.testing.assert_allclose(expectation((jerf, jerf, _erf_prime), cov), _erf_erf_erf_primes(cov), rtol=rtol)
    np.testing.assert_allclose(expectation((_erf_prime, jerf, jerf), cov[::-1, ::-1]), _erf_erf_erf_primes(cov), rtol=rtol)


@pytest.mark.parametrize("variance, rho, rtol", [(0.3, 0.3, 1e-13), (1.0, 0.9, 1e-12), (1.0, 0.99, 1e-12), (3.0, 0.99, 1e-11),
                                                 (10.0, 0.9, 1e-10)])
def test_four_saturating_factors(variance, rho, rtol):
    """4-D against the closed form <erf erf erf' erf'>, with erf' and with erf as the tabulated last
    variable (measured <= 5e-14 at variance <= 1, 2e-13 at 3, 1e-12 at 10; at 10, rho = 0.99: 1.5e-10).
    Tensor Gauss–Hermite with 28 nodes had 1e-4 at (1, 0.9), 2e-1 at (3, 0.99) and 8e-1 at 10."""
    corr = np.full((4, 4), rho) + (1 - rho) * np.eye(4)
    cov = variance * corr * np.outer([1.0, 1.2, 0.9, 1.1], [1.0, 1.2, 0.9, 1.1])
    expected = _erf_erf_erf_primes(cov)
    np.testing.assert_allclose(expectation((jerf, jerf, _erf_prime, _erf_prime), cov), expected, rtol=rtol)
    swapped = [2, 3, 0, 1]
    np.testing.assert_allclose(expectation((_erf_prime, _erf_prime, jerf, jerf), cov[swapped][:, swapped]), expected, rtol=rtol)


def test_four_sample_stein_forms_at_strong_correlation():
    """Price's theorem, d<F>/dK_ab = <d_a d_b F> (a != b), by central differences of the lower order:
    second derivatives from <F>, fourth from second, for tanh' tanh' tanh tanh at correlation 0.99
    (tensor Gauss–Hermite had the fourth derivatives off by O(1) there). The tabulated last variable
    carries the Hermite moments E[u^q f(mu + s u)], q <= 4."""
    tanh, dtanh = jnp.tanh, lambda z: 1 - jnp.tanh(z) ** 2
    corr = np.full((4, 4), 0.99) + 0.01 * np.eye(4)
    cov = corr * np.outer([1.0, 1.2, 0.9, 1.1], [1.0, 1.2, 0.9, 1.1])
    funcs, step = (dtanh, dtanh, tanh, tanh), 1e-4
    second, fourth = expectation(funcs, cov, 2), expectation(funcs, cov, 4)
    for a, b, c, d in ((0, 3, 1, 2), (2, 3, 0, 1), (0, 1, 0, 1)):
        bump = np.zeros((4, 4))
        bump[a, b] = bump[b, a] = step
        lower = (expectation(funcs, cov + bump) - expectation(funcs, cov - bump)) / (2 * step)
        np.testing.assert_allclose(second[a, b], lower, rtol=1e-7)
        lower = (expectation(funcs, cov + bump, 2)[c, d] - expectation(funcs, cov - bump, 2)[c, d]) / (2 * step)
        np.testing.assert_allclose(fourth[a, b, c, d], lower, rtol=1e-6)


def test_orthant_probabilities():
    """P(z > 0): 3-D closed form 1/8 + sum asin(rho_ij) / 4pi; 4-D with rho = 1/2 is 1/5; block-diagonal factorises."""
    cov3 = np.array([[1.0, 0.3, -0.4], [0.3, 2.0, 0.5], [-0.4, 0.5, 0.7]])
    rho = cov3 / np.sqrt(np.outer(np.diag(cov3), np.diag(cov3)))
    expected3 = 1 / 8 + (np.arcsin(rho[0, 1]) + np.arcsin(rho[0, 2]) + np.arcsin(rho[1, 2])) / (4 * np.pi)
    np.testing.assert_allclose(expectation((STEP,) * 3, cov3), expected3, rtol=1e-12)

    equicorrelated = 0.5 * np.eye(4) + 0.5
    np.testing.assert_allclose(expectation((STEP,) * 4, equicorrelated), 0.2, rtol=1e-12)

    block = np.zeros((4, 4))
    block[:2, :2] = COVS_2[0]
    block[2:, 2:] = COVS_2[1]
    pair = leaky_pair_closed_form(0.0, COVS_2[:2])
    np.testing.assert_allclose(expectation((STEP,) * 4, block), pair[1][0] * pair[1][1], rtol=1e-12)
    np.testing.assert_allclose(expectation((RELU,) * 4, block), pair[0][0] * pair[0][1], rtol=1e-12)


def test_four_dimensional_orthant_against_scipy():
    cov = np.array([[1, 0.3, 0.2, -0.1], [0.3, 1, 0.4, 0.2], [0.2, 0.4, 1, 0.1], [-0.1, 0.2, 0.1, 1]])
    reference = multivariate_normal(mean=np.zeros(4), cov=cov, abseps=1e-8, releps=1e-8, maxpts=10**7).cdf(np.zeros(4))
    np.testing.assert_allclose(expectation((STEP,) * 4, cov), reference, atol=5e-8)


# ---------------------------------------------------------------------------------------------- convergence


@pytest.mark.parametrize(
    "name, tolerance_1d, tolerance_2d",
    # The tolerances date from tensor Gauss–Hermite, slow for tanh (poles at +-i pi/2): 2-D, 96 against 192
    # nodes per dimension, tanh 8e-9, gelu 5e-12; 1-D, 200 against 400 nodes, tanh 5e-12. The graded
    # Gauss–Legendre rule that now integrates 1 and 2 variables is converged to round-off (<= 7e-16).
    [("gelu", 1e-12, 2e-11), ("tanh", 2e-11, 2e-8)],
)
def test_node_doubling_converges(name, tolerance_1d, tolerance_2d):
    g = _derivatives(name)[0]
    one_d = np.array([[[0.5]], [[1.0]], [[2.0]]])
    for funcs, cov, n, tolerance in (((product(g, g),), one_d, 200, tolerance_1d), ((g, g), COVS_2[:3], 96, tolerance_2d)):
        coarse = expectation(funcs, cov, nodes=n)
        fine = expectation(funcs, cov, nodes=2 * n)
        assert np.all(np.isfinite(fine))
        np.testing.assert_allclose(coarse, fine, rtol=tolerance, atol=1e-14)


def test_smooth_rule_agrees_with_quad_in_one_dimension():
    gelu = lambda z: z * norm.cdf(z)  # noqa: E731
    for variance in (0.4, 3.0):
        expected = quad_1d(lambda z: gelu(z) ** 2, variance)
        got = expectation((lambda z: (z * 0.5 * (1 + jerf(z / math.sqrt(2)))) ** 2,), [[variance]])
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        np.testing.assert_allclose(expectation((lambda z: jerf(z) ** 2,), [[variance]]), quad_1d(lambda z: np_erf(z) ** 2, variance), rtol=1e-11)


def _quad_2d(f, g, cov):
    """<f(z_0) g(z_1)> by nested adaptive quadrature in whitened coordinates, split where z_0 and z_1 cross 0."""
    l00, l10 = math.sqrt(cov[0, 0]), cov[0, 1] / math.sqrt(cov[0, 0])
    l11 = math.sqrt(max(cov[1, 1] - l10 * l10, 0.0))

    def inner(u1):
        integrand = lambda u2: g(l10 * u1 + l11 * u2) * norm.pdf(u2)  # noqa: E731
        cut = float(np.clip(-l10 * u1 / l11, -12, 12))
        return sum(integrate.quad(integrand, a, b, epsabs=1e-16, epsrel=1e-12, limit=400)[0] for a, b in ((-12, cut), (cut, 12)))

    outer = lambda u1: f(l00 * u1) * inner(u1) * norm.pdf(u1)  # noqa: E731
    return sum(integrate.quad(outer, a, b, epsabs=1e-16, epsrel=1e-12, limit=400)[0] for a, b in ((-12, 0), (0, 12)))


_SATURATING = {"tanh": (jnp.tanh, np.tanh, lambda z: 1 / np.cosh(z) ** 2),
               "sigmoid": (jax.nn.sigmoid, lambda z: 0.5 * (1 + np.tanh(z / 2)), lambda z: 0.25 / np.cosh(z / 2) ** 2)}


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_saturating_activations_at_large_variance_agree_with_adaptive_quadrature(name):
    """tanh and sigmoid at variance 10 to 1000 turn over within 1/sqrt(v) of 0 in whitened coordinates,
    where Gauss–Hermite had errors up to 4e-4 (1-D, 800 nodes, v = 100). The graded rule: 1e-12."""
    f, np_f, _ = _SATURATING[name]
    for variance in (10.0, 100.0, 1000.0):
        np.testing.assert_allclose(expectation((product(f, f),), [[variance]]), quad_1d(lambda z: np_f(z) ** 2, variance), rtol=1e-12)


@pytest.mark.parametrize("name, variance, rho", [
    ("tanh", 100.0, -0.999),
    pytest.param("sigmoid", 100.0, 0.5, marks=pytest.mark.slow),
    pytest.param("tanh", 100.0, 0.5, marks=pytest.mark.slow),
    pytest.param("tanh", 30.0, 0.99, marks=pytest.mark.slow),
])
def test_saturating_pairs_at_large_variance_agree_with_adaptive_quadrature(name, variance, rho):
    """The 2-D case, where Gauss–Hermite had errors up to 2e-2 (96 x 96, v = 100, rho = 0.99), giving
    |rho| = 1.04 for antipodal tanh inputs: the graded rule agrees to 1e-11, also for the Stein form
    <d_a d_b (f_a f_b)> = <f'_a f'_b>, whose integrand is a bump of width 1/sqrt(v). (The nested
    adaptive quadratures take 15-30 s a case: three cases run in make validate only.)"""
    f, np_f, np_df = _SATURATING[name]
    cov = variance * np.array([[1.0, rho], [rho, 1.0]])
    np.testing.assert_allclose(expectation((f, f), cov), _quad_2d(np_f, np_f, cov), rtol=1e-11)
    np.testing.assert_allclose(expectation((f, f), cov, 2)[0, 1], _quad_2d(np_df, np_df, cov), rtol=1e-11)


# ---------------------------------------------------------------------------------------------- singular blocks


@pytest.mark.parametrize("funcs", [(jnp.tanh, jnp.tanh), (RELU, RELU), (STEP, STEP)], ids=["tanh", "relu", "step"])
def test_duplicate_samples_reduce_to_one_dimension(funcs):
    variance = 1.7
    duplicate = expectation(funcs, np.full((2, 2), variance))
    single = expectation((product(*funcs),), [[variance]])
    np.testing.assert_allclose(duplicate, single, rtol=1e-12)


def test_duplicate_and_antipodal_samples_have_known_values():
    v = 1.7
    np.testing.assert_allclose(expectation((RELU, RELU), np.full((2, 2), v)), v / 2, rtol=1e-13)
    np.testing.assert_allclose(expectation((RELU, RELU), [[v, -v], [-v, v]]), 0.0, atol=1e-15)
    np.testing.assert_allclose(expectation((jnp.tanh, jnp.tanh), np.full((2, 2), v)), quad_1d(lambda z: np.tanh(z) ** 2, v), rtol=1e-11)


def test_derivative_of_singular_block_raises_naming_it():
    covs = np.stack([COVS_2[0], np.full((2, 2), 1.3), COVS_2[1]])
    with pytest.raises(ValueError, match="block 1"):
        expectation((RELU, RELU), covs, derivative_order=2)
    with pytest.raises(ValueError, match="non-singular"):
        expectation((jnp.tanh,), [[0.0]], derivative_order=1)


@pytest.mark.parametrize("t", [2.0, -0.5])
def test_range_derivatives_of_collinear_blocks_are_derivatives_along_the_line(t):
    """z_b = t z_a, z_a ~ N(0, v): contracted with (1, t) in every index, singular="range" gives
    (d/du)^r F(u, t u). Oracles: relu(u) relu(t u) = t relu(u)^2 for t > 0 (2 t <relu>, t, 0 at
    r = 1, 2, 4, the last a <delta'>), and cos(u) cos(t u) = [cos((1+t) u) + cos((1-t) u)] / 2 with
    <cos(w u)> = exp(-w^2 v / 2). The derivatives sit on the first sample; 2-D quadrature is forced
    for cos (the Mehler series gives the partial derivatives themselves)."""
    v = 1.3
    cov = np.array([[v, t * v], [t * v, t * t * v]])
    line = np.array([1.0, t])

    def along(table, r):
        return np.einsum(table, list(range(r)), *[x for i in range(r) for x in (line, [i])], [])

    for r in (1, 2, 4):
        cosines = expectation((jnp.cos, jnp.cos), cov, r, nodes=96, singular="range")
        expected = 0.5 * sum(np.real((1j * w) ** r) * np.exp(-w * w * v / 2) for w in (1 + t, 1 - t))
        np.testing.assert_allclose(along(cosines, r), expected, rtol=1e-12, atol=1e-14)
        assert np.all(np.abs(np.delete(cosines.reshape(-1), 0)) < 1e-12)  # (a, ..., a) holds it all
        if t > 0:
            relus = expectation((RELU, RELU), cov, r, singular="range")
            np.testing.assert_allclose(along(relus, r), {1: 2 * t * math.sqrt(v / (2 * math.pi)), 2: t, 4: 0.0}[r], atol=1e-12)
    np.testing.assert_allclose(expectation((jnp.cos,), [[0.0]], 2, singular="range"), 0.0, atol=1e-13)  # no range at all
    with pytest.raises(ValueError, match="singular must be 'raise' or 'range'"):
        expectation((jnp.cos,), [[1.0]], 2, singular="ignore")


def test_zero_variance_is_the_function_at_zero():
    cos_at_zero = expectation((jnp.cos,), [[0.0]])
    np.testing.assert_allclose(cos_at_zero, 1.0, rtol=1e-15)
    np.testing.assert_allclose(expectation((jnp.cos, jnp.cos), [[0.0, 0.0], [0.0, 0.8]]), math.exp(-0.4), rtol=1e-13)
    half_step = PiecewiseMonomial(0, 1.0, 0.0, at_zero=0.5)
    np.testing.assert_allclose(expectation((half_step,), [[0.0]]), 0.5, rtol=1e-15)
    # split rule: a zero-variance outer variable is integrated over [-9, 9] by Gauss-Legendre (measured 2.6e-10)
    np.testing.assert_allclose(expectation((half_step, STEP), [[0.0, 0.0], [0.0, 2.0]]), 0.25, rtol=1e-9)
    np.testing.assert_allclose(expectation((STEP, half_step), [[2.0, 0.0], [0.0, 0.0]]), 0.25, rtol=1e-13)
    np.testing.assert_allclose(expectation((RELU, RELU), [[0.0, 0.0], [0.0, 2.0]]), 0.0, atol=1e-15)
    # 3 and 4 variables: a zero-variance last variable (the tabulated one) contributes exactly f(0)
    cov = np.zeros((4, 4))
    cov[:3, :3] = _psd(3, np.cos(np.arange(9)), 0.3)
    assert expectation((jnp.cos, jnp.cos, jnp.cos, jnp.tanh), cov) == 0.0
    np.testing.assert_allclose(expectation((jnp.cos, jnp.cos, jnp.cos, jnp.cos), cov), _cos_product(cov[:3, :3]), rtol=1e-14)
    np.testing.assert_allclose(expectation((jnp.cos, jnp.cos, jnp.cos), cov[1:, 1:]), _cos_product(cov[1:3, 1:3]), rtol=1e-14)


def test_safe_cholesky_reconstructs_and_zeroes_singular_columns():
    cov = np.array([[[2.0, 2.0], [2.0, 2.0]], [[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.3], [0.3, 0.5]]])
    chol = np.asarray(safe_cholesky(cov))
    assert np.all(np.isfinite(chol))
    np.testing.assert_allclose(chol @ np.swapaxes(chol, -1, -2), cov, atol=1e-14)
    np.testing.assert_allclose(np.triu(chol, 1), 0.0)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "funcs, cov, order, message",
    [
        ((RELU,), [[np.nan]], 0, "NaN"),
        ((RELU,), [[np.inf]], 0, "NaN or inf"),
        ((RELU, RELU), [[-1.0, 0.0], [0.0, 1.0]], 0, "negative variance"),
        ((RELU, RELU), [[1.0]], 0, r"shape \(\.\.\., 2, 2\)"),
        ((RELU,) * 5, np.eye(5), 0, "1 to 4 functions"),
        ((RELU,), [[1.0]], 3, "derivative_order"),
    ],
)
def test_bad_input_raises(funcs, cov, order, message):
    with pytest.raises(ValueError, match=message):
        expectation(funcs, np.asarray(cov, dtype=float), derivative_order=order)


def _gelu_smoothed(mu, s):
    """E[gelu(mu + s u)], u ~ N(0, 1): mu Phi(mu/q) + (s^2/q) phi(mu/q), q = sqrt(1 + s^2)."""
    q = math.sqrt(1 + s * s)
    return mu * norm.cdf(mu / q) + s * s / q * norm.pdf(mu / q)


def _gelu_prime_smoothed(mu, s):
    """E[gelu'(mu + s u)] = Phi(mu/q) + (mu/q^3) phi(mu/q), q = sqrt(1 + s^2)."""
    q = math.sqrt(1 + s * s)
    return norm.cdf(mu / q) + mu / q**3 * norm.pdf(mu / q)


@pytest.mark.parametrize("scale", [0.0, 0.05, 0.4, 2.5])
def test_smoothing_tables_against_closed_forms(scale):
    """The tabulated last variable of the 3- and 4-variable rules, h_q(mu) = E[u^q f(mu + s u)], against
    the closed-form Gaussian smoothings of gelu and gelu' (q = 0) and Stein's E[u f(mu + s u)] =
    s E[f'(mu + s u)] (q = 1), at points between the table's: s = 0 tabulates f itself (the sharpest)."""
    from ntkit.activations import get_activation
    from ntkit.gaussian import _smoothing_tables, _table_size

    act = get_activation("gelu")
    gelu, dgelu = act.fn, act.derivative(1)
    chol = np.array([[[1.0, 0.0, 0.0], [0.3, 0.9, 0.0], [0.7, -0.4, scale]]])
    radius = 9.0 * (0.7 + 0.4)
    mu = np.random.default_rng(0).uniform(-radius, radius, 500)
    tables = _smoothing_tables((gelu, dgelu), jnp.asarray(mu[None]), jnp.asarray([radius]), jnp.asarray([scale]), 1, _table_size(chol))
    want_gelu = [_gelu_smoothed(m, scale) for m in mu]
    want_dgelu = [_gelu_prime_smoothed(m, scale) for m in mu]
    np.testing.assert_allclose(tables[gelu, 0][0], want_gelu, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tables[dgelu, 0][0], want_dgelu, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tables[gelu, 1][0], scale * np.array(want_dgelu), rtol=1e-12, atol=1e-13)


def _gelu_family(k):
    from ntkit.activations import get_activation

    act = get_activation("gelu")
    s, d = act.fn, act.derivative(1)
    if k == 3:  # products of sigma and sigma' on a sample, in every slot
        return [(product(s, s), s, d), (s, product(s, d), s), (d, d, product(s, s)), (product(s, s), product(d, d), product(s, d))]
    return [tuple(s if i in pair else d for i in range(4)) for pair in itertools.combinations(range(4), 2)] + [(s,) * 4, (d,) * 4]


FAMILIES = {
    "piecewise, k=4": (lambda: [(LINEAR,) * 4, (RELU, STEP, RELU, STEP), (STEP, STEP, RELU, RELU), (RELU,) * 4], 4),
    "piecewise, k=3": (lambda: [(LINEAR, LINEAR, SQUARE), (RELU, STEP, SQUARE), (STEP, RELU, RELU)], 3),
    "cos and tanh, k=3": (lambda: [(jnp.cos,) * 3, (jnp.tanh, jnp.cos, jnp.tanh), (jnp.cos, jnp.cos, jnp.tanh)], 3),
    "gelu, k=4": (lambda: _gelu_family(4), 4),
    "gelu, k=3": (lambda: _gelu_family(3), 3),
    "relu and step, k=2": (lambda: [(RELU, RELU), (RELU, STEP), (STEP, STEP)], 2),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_expectations_of_a_family_equal_one_at_a_time(name):
    """Sharing the nodes among the tuples of a family (three or four variables) changes nothing but
    round-off, and every member lands in its own place (also for two variables, integrated one by
    one); the members with a closed form (Isserlis for z^4 and z z z^2, cosine products) hold to
    quadrature accuracy."""
    make, k = FAMILIES[name]
    family = make()
    covs = np.stack([_psd(4, np.cos(np.arange(16) + shift), 0.2)[:k, :k] * 0.8 for shift in range(3)])
    together = np.stack(expectations(family, covs), -1)
    assert together.shape == (3, len(family))
    for t, funcs in enumerate(family):
        np.testing.assert_allclose(together[:, t], expectation(funcs, covs), rtol=1e-13, atol=1e-15)
    for t, funcs in enumerate(family):
        if funcs == (LINEAR,) * 4:
            isserlis = covs[:, 0, 1] * covs[:, 2, 3] + covs[:, 0, 2] * covs[:, 1, 3] + covs[:, 0, 3] * covs[:, 1, 2]
            np.testing.assert_allclose(together[:, t], isserlis, rtol=1e-10)
        if funcs == (LINEAR, LINEAR, SQUARE):
            np.testing.assert_allclose(together[:, t], covs[:, 0, 1] * covs[:, 2, 2] + 2 * covs[:, 0, 2] * covs[:, 1, 2], rtol=1e-10)
        if funcs == (jnp.cos,) * 3:
            np.testing.assert_allclose(together[:, t], [_cos_product(c) for c in covs], rtol=1e-10)


@pytest.mark.parametrize("order", [1, 2, 4])
def test_stein_forms_of_a_family_equal_one_at_a_time(order):
    """Derivative forms: three variables share the nodes; with one variable (repeated variances,
    integrated one by one) every member lands in its own place with its own shape."""
    from ntkit.activations import get_activation

    act = get_activation("gelu")
    s, d = act.fn, act.derivative(1)
    one_d = np.array([0.5, 1.7, 0.5, 3.0])[:, None, None]
    for family, cov in (([(product(s, s),), (product(d, d),), (product(s, d),)], one_d),
                        ([(RELU, STEP, RELU), (STEP, STEP, RELU)], _psd(3, np.cos(np.arange(9)), 0.3))):
        together = expectations(family, cov, order)
        for funcs, values in zip(family, together):
            np.testing.assert_allclose(values, expectation(funcs, cov, order), rtol=1e-13, atol=1e-15)
            assert values.shape == cov.shape[:-2] + (cov.shape[-1],) * order


def test_expectations_reject_mixed_or_empty_families():
    with pytest.raises(ValueError, match="equally many functions"):
        expectations([(RELU, RELU), (RELU, RELU, RELU)], np.eye(2))
    with pytest.raises(ValueError, match="equally many functions"):
        expectations([], np.eye(2))
    with pytest.raises(ValueError, match="NaN or inf"):
        expectations([(RELU, RELU, RELU)], np.full((3, 3), np.nan))


@settings(max_examples=40, deadline=None)
@given(rho=st.floats(-1.0, 1.0), var_a=st.floats(0.05, 5.0), var_b=st.floats(0.05, 5.0))
@example(rho=0.9999999999999999, var_a=2.0, var_b=3.0)
def test_piecewise_pair_closed_form_against_known_moments(rho, var_a, var_b):
    """Orthant probability 1/4 + asin(rho)/2pi, Isserlis moments of the linear case, and the
    arc-cosine kernel of relu, at every correlation including rho = +-1."""
    c = rho * math.sqrt(var_a * var_b)
    rho = max(-1.0, min(1.0, c / math.sqrt(var_a * var_b)))  # the correlation the function sees (asin is ill-conditioned at +-1)

    def pair(f, g):
        return float(piecewise_pair(f, g, jnp.asarray(var_a), jnp.asarray(var_b), jnp.asarray(c)))

    linear = lambda p: PiecewiseMonomial(p, 1.0, 1.0)
    tol = dict(rel=1e-12, abs=1e-12 * (1 + var_a * var_b))
    assert pair(STEP, STEP) == pytest.approx(0.25 + math.asin(rho) / (2 * math.pi), **tol)
    assert pair(linear(2), linear(2)) == pytest.approx(var_a * var_b + 2 * c * c, **tol)
    assert pair(linear(3), linear(1)) == pytest.approx(3 * var_a * c, **tol)
    assert pair(linear(1), linear(3)) == pytest.approx(3 * var_b * c, **tol)
    t = math.acos(rho)
    assert pair(RELU, RELU) == pytest.approx(math.sqrt(var_a * var_b) * (math.sin(t) + (math.pi - t) * rho) / (2 * math.pi), **tol)


def test_piecewise_pair_closed_form_against_two_dimensional_quadrature():
    """Every power split p + q <= 4 of leaky pieces against adaptive quadrature split at both kinks."""
    cov = np.array([[1.3, -0.5], [-0.5, 0.8]])
    chol = np.linalg.cholesky(cov)
    for p in range(5):
        for q in range(5 - p):
            f, g = PiecewiseMonomial(p, 1.2, -0.3), PiecewiseMonomial(q, 0.5, 0.9)

            def inner(u):  # over v, split where z_b changes sign
                za = chol[0, 0] * u
                fa = (f.c_plus if za > 0 else f.c_minus) * za**p * math.exp(-u * u / 2)
                kink = -chol[1, 0] * u / chol[1, 1]

                def h(v):
                    zb = chol[1, 0] * u + chol[1, 1] * v
                    return (g.c_plus if zb > 0 else g.c_minus) * zb**q * math.exp(-v * v / 2)

                return fa * sum(integrate.quad(h, lo, hi, epsabs=1e-14, epsrel=1e-13)[0] for lo, hi in ((-12, kink), (kink, 12)))

            want = sum(integrate.quad(inner, lo, hi, epsabs=1e-14, epsrel=1e-13)[0] for lo, hi in ((-12, 0), (0, 12))) / (2 * math.pi)
            got = float(piecewise_pair(f, g, jnp.asarray(cov[0, 0]), jnp.asarray(cov[1, 1]), jnp.asarray(cov[0, 1])))
            assert got == pytest.approx(want, rel=1e-9, abs=1e-11), (p, q)


def test_piecewise_pair_with_a_zero_variance_is_the_one_sample_integral():
    """z_a = 0: <f(0) g(z_b)> = f(0) <g(z_b)> (f(0) = at_zero for power 0, else 0), against quad; both zero: f(0) g(0)."""
    for p in range(3):
        for q in range(4):
            f, g = PiecewiseMonomial(p, 1.2, -0.3, at_zero=0.45), PiecewiseMonomial(q, 0.5, 0.9, at_zero=0.7)
            f0, g0 = (0.45 if p == 0 else 0.0), (0.7 if q == 0 else 0.0)
            want = f0 * quad_1d(lambda z: np.where(z > 0, 0.5, 0.9) * z**q, 1.7)
            got = piecewise_pair(f, g, jnp.asarray(0.0), jnp.asarray(1.7), jnp.asarray(0.0))
            assert float(got) == pytest.approx(want, rel=1e-12, abs=1e-15), (p, q)
            swapped = piecewise_pair(g, f, jnp.asarray(1.7), jnp.asarray(0.0), jnp.asarray(0.0))
            assert float(swapped) == pytest.approx(want, rel=1e-12, abs=1e-15), (p, q)
            assert float(piecewise_pair(f, g, jnp.asarray(0.0), jnp.asarray(0.0), jnp.asarray(0.0))) == f0 * g0
