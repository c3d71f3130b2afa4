"""Critical initializations against textbook values and an independent scipy computation.

Independent susceptibilities (PDLT ch. 5), by scipy.integrate.quad with the activations written in
numpy here:
    chi_perp(K) = c_w <sigma'^2>_K,
    chi_par(K)  = c_w d<sigma^2>_K/dK = c_w <sigma'^2 + sigma sigma''>_K   (Price's theorem),
the latter also checked by a finite difference in K of <sigma^2>_K.
"""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import erf, expit, ndtr

import ntkit
from ntkit.criticality import CriticalPoint, NoCriticalPointError, critical, critical_points, susceptibilities


def _phi(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _silu_derivatives(z):
    s = expit(z)
    return z * s, s + z * s * (1 - s), 2 * s * (1 - s) + z * s * (1 - s) * (1 - 2 * s)


# sigma, sigma', sigma'' in numpy
NUMPY = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2, lambda z: -2 * np.tanh(z) * (1 - np.tanh(z) ** 2)),
    "sin": (np.sin, np.cos, lambda z: -np.sin(z)),
    "erf": (erf, lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z), lambda z: -4 * z / math.sqrt(math.pi) * np.exp(-z * z)),
    "gelu": (lambda z: z * ndtr(z), lambda z: ndtr(z) + z * _phi(z), lambda z: (2 - z * z) * _phi(z)),
    "silu": tuple(lambda z, k=k: _silu_derivatives(z)[k] for k in range(3)),
}


def gaussian_mean(f, K):
    """<f(z)>, z ~ N(0, K), by adaptive quadrature."""
    sd = math.sqrt(K)
    return integrate.quad(lambda u: f(sd * u) * _phi(u), -40, 40, epsabs=1e-14, epsrel=1e-12, limit=500)[0]


def chi_perp(name, c_w, K):
    return c_w * gaussian_mean(lambda z: NUMPY[name][1](z) ** 2, K)


def chi_par(name, c_w, K):
    s, ds, dds = NUMPY[name]
    return c_w * gaussian_mean(lambda z: ds(z) ** 2 + s(z) * dds(z), K)


def chi_par_finite_difference(name, c_w, K, h=1e-3):
    s = NUMPY[name][0]
    mean_square = lambda k: gaussian_mean(lambda z: s(z) ** 2, k)  # noqa: E731
    # fourth-order central difference: error ~ h^4 <...> plus quadrature noise / h
    return c_w * (-mean_square(K + 2 * h) + 8 * mean_square(K + h) - 8 * mean_square(K - h) + mean_square(K - 2 * h)) / (12 * h)


# ---------------------------------------------------------------------------------------------- textbook values


@pytest.mark.parametrize(
    "name, c_b, c_w, kind",
    [
        ("tanh", 0.0, 1.0, "K*=0"),
        ("sin", 0.0, 1.0, "K*=0"),
        ("erf", 0.0, math.pi / 4, "K*=0"),  # c_w = 1 / erf'(0)^2 = pi / 4
        ("relu", 0.0, 2.0, "scale-invariant"),
        ("linear", 0.0, 1.0, "scale-invariant"),
        ("leaky_relu(0.2)", 0.0, 2 / (1 + 0.2**2), "scale-invariant"),
        ("leaky_relu(-0.5)", 0.0, 2 / (1 + 0.5**2), "scale-invariant"),
        ("leaky_relu", 0.0, 2 / (1 + 0.01**2), "scale-invariant"),
    ],
)
def test_known_critical_points(name, c_b, c_w, kind):
    point = critical(name)
    assert point.kind == kind
    np.testing.assert_allclose([point.c_b, point.c_w], [c_b, c_w], rtol=1e-12, atol=1e-14)
    assert (point.chi_parallel, point.chi_perp) == (1.0, 1.0)


def test_gelu_critical_point():
    """<gelu gelu''>_K = 0 reduces (Gaussian integrals of z^(2n+1) (Phi(z) - 1/2) e^(-a z^2 / 2), a = 1 + 1/K)
    to 2a^2 - a - 2 = 0, i.e. K* = (3 + sqrt(17)) / 2; PDLT quotes (c_b, c_w) = (0.17292239, 1.98305826)."""
    point = critical("gelu")
    assert point.kind == "nontrivial"
    np.testing.assert_allclose(point.K_star, (3 + math.sqrt(17)) / 2, rtol=1e-10)
    np.testing.assert_allclose([point.c_b, point.c_w], [0.17292239, 1.98305826], rtol=0, atol=1e-7)
    c_b, c_w = point  # unpacks as a pair
    assert (c_b, c_w) == (point.c_b, point.c_w)
    assert isinstance(ntkit.critical("gelu"), CriticalPoint)


def test_silu_has_a_nontrivial_critical_point():
    point = critical("silu")
    assert point.kind == "nontrivial"
    assert point.K_star > 1 and point.c_b > 0 and point.c_w > 0


@pytest.mark.parametrize("name", ["sigmoid", "softplus"])
def test_no_critical_point_raises(name):
    assert critical_points(name) == []
    with pytest.raises(NoCriticalPointError, match=f"{name} has no critical point"):
        critical(name)
    assert issubclass(NoCriticalPointError, ValueError)


# ---------------------------------------------------------------------------------------------- independent chi's


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_nontrivial_point_is_critical_by_quadrature(name):
    point = critical(name)
    K = point.K_star
    assert abs(chi_perp(name, point.c_w, K) - 1) < 1e-8
    assert abs(chi_par(name, point.c_w, K) - 1) < 1e-8
    assert abs(chi_par_finite_difference(name, point.c_w, K) - 1) < 1e-7
    # the fixed-point equation K* = c_b + c_w <sigma^2>_K*
    fixed = point.c_b + point.c_w * gaussian_mean(lambda z: NUMPY[name][0](z) ** 2, K)
    np.testing.assert_allclose(fixed, K, rtol=1e-10)
    np.testing.assert_allclose([point.chi_parallel, point.chi_perp], 1.0, atol=1e-8)


@pytest.mark.parametrize("name", ["tanh", "sin", "erf"])
def test_zero_fixed_point_is_critical_by_quadrature(name):
    """K* = 0: the chi's are 1 in the limit K -> 0 (corrections are O(K)), and K = 0 is a fixed point."""
    point = critical(name)
    for K in (1e-9, 1e-10):
        assert abs(chi_perp(name, point.c_w, K) - 1) < 1e-8
        assert abs(chi_par(name, point.c_w, K) - 1) < 1e-8
    assert NUMPY[name][0](0.0) == 0.0  # K* = 0 = c_b + c_w sigma(0)^2
    # the flow is attracted to 0: K' = c_w <sigma^2>_K < K for small K
    assert point.c_w * gaussian_mean(lambda z: NUMPY[name][0](z) ** 2, 1e-2) < 1e-2


@pytest.mark.parametrize("slope", [0.0, 0.2, -0.5, 1.0])
def test_scale_invariant_chi_by_quadrature(slope):
    """sigma'' vanishes away from 0 and sigma(0) = 0, so chi_par = chi_perp = c_w <sigma'^2> at every K."""
    point = critical(f"leaky_relu({slope})")
    ds2 = lambda z: np.where(z > 0, 1.0, slope) ** 2  # noqa: E731
    for K in (0.3, 4.0):
        sd = math.sqrt(K)
        mean = sum(integrate.quad(lambda u: ds2(sd * u) * _phi(u), a, b, epsabs=1e-15)[0] for a, b in ((-40, 0), (0, 40)))
        np.testing.assert_allclose(point.c_w * mean, 1.0, rtol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "gelu", "erf", "sin"])
def test_susceptibilities_against_quadrature(name):
    Ks = np.array([0.3, 1.0, 2.5])
    par, perp = susceptibilities(name, 1.7, Ks)
    assert par.shape == perp.shape == Ks.shape
    np.testing.assert_allclose(perp, [chi_perp(name, 1.7, K) for K in Ks], rtol=1e-10)
    np.testing.assert_allclose(par, [chi_par(name, 1.7, K) for K in Ks], rtol=1e-9)


def test_susceptibilities_of_relu():
    par, perp = susceptibilities("relu", 2.0, [0.5, 3.0])
    np.testing.assert_allclose(par, 1.0, rtol=1e-12)
    np.testing.assert_allclose(perp, 1.0, rtol=1e-12)
