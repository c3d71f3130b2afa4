"""The activation registry against numpy/scipy formulas and finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf, expit
from scipy.stats import norm

from ntkit.activations import Activation, get_activation, leaky_relu, names

Z = np.linspace(-3.0, 3.0, 61) + 0.013  # avoids z = 0 exactly, where piecewise-linear ones kink

REFERENCE = {
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "linear": lambda z: z,
    "gelu": lambda z: z * norm.cdf(z),
    "gelu_tanh": lambda z: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))),
    "tanh": np.tanh,
    "erf": erf,
    "sigmoid": expit,
    "silu": lambda z: z * expit(z),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "sin": np.sin,
}


def test_registry_is_the_documented_one():
    assert set(names()) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_every_name_evaluates_to_its_formula(name):
    act = get_activation(name)
    assert isinstance(act, Activation)
    np.testing.assert_allclose(np.asarray(act(jnp.asarray(Z))), REFERENCE[name](Z), rtol=1e-13, atol=1e-15)


def _central_difference(f, z, order, h):
    """Central finite difference of order 1..3 of the numpy function f."""
    if order == 1:
        return (f(z + h) - f(z - h)) / (2 * h)
    if order == 2:
        return (f(z + h) - 2 * f(z) + f(z - h)) / h**2
    return (f(z + 2 * h) - 2 * f(z + h) + 2 * f(z - h) - f(z - 2 * h)) / (2 * h**3)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("order", [1, 2, 3])
def test_derivatives_match_finite_differences(name, order):
    act = get_activation(name)
    h = {1: 1e-5, 2: 1e-4, 3: 1e-3}[order]
    tolerance = {1: 1e-8, 2: 1e-6, 3: 1e-4}[order]
    expected = _central_difference(REFERENCE[name], Z, order, h)
    got = np.asarray(act.derivative(order)(jnp.asarray(Z)))
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("spec, slopes", [("relu", (1.0, 0.0)), ("leaky_relu(0.2)", (1.0, 0.2)), ("linear", (1.0, 1.0))])
def test_piecewise_linear_derivative_at_the_kink_is_the_mean_slope(spec, slopes):
    act = get_activation(spec)
    assert act.slopes == slopes and act.scale_invariant
    np.testing.assert_allclose(act.derivative(1)(jnp.zeros(3)), 0.5 * sum(slopes))
    np.testing.assert_allclose(act.derivative(2)(jnp.asarray([-1.0, 2.0])), 0.0)


def test_derivative_order_zero_is_the_function_and_negative_raises():
    act = get_activation("tanh")
    np.testing.assert_allclose(act.derivative(0)(jnp.asarray(Z)), np.tanh(Z), rtol=1e-14)
    with pytest.raises(ValueError, match="derivative order"):
        act.derivative(-1)


@pytest.mark.parametrize("spec, slope", [("leaky_relu(0.2)", 0.2), ("leaky_relu( 0.05 )", 0.05), ("LEAKY_RELU(-1e-1)", -0.1)])
def test_leaky_relu_with_a_slope_parses(spec, slope):
    act = get_activation(spec)
    assert act.slopes == (1.0, slope)
    np.testing.assert_allclose(act(jnp.asarray(Z)), np.where(Z > 0, Z, slope * Z), rtol=1e-15)
    assert act.name == leaky_relu(slope).name == f"leaky_relu({slope:g})"


def test_leaky_relu_default_slope_and_bad_slope():
    assert get_activation("leaky_relu").slopes == (1.0, 0.01)
    with pytest.raises(ValueError, match="finite"):
        leaky_relu(float("nan"))
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("leaky_relu(abc)")
    with pytest.raises(ValueError, match="slope must be a number, got '1e'"):
        get_activation("leaky_relu(1e)")
    with pytest.raises(ValueError, match="slope must be finite with"):  # its square would overflow the kernels
        get_activation("leaky_relu(1e300)")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        get_activation("swishy")
    message = str(info.value)
    assert "swishy" in message
    for name in names():
        assert name in message


def test_scale_invariance_flags():
    assert {n for n in names() if get_activation(n).scale_invariant} == {"relu", "leaky_relu", "linear"}
    assert get_activation("relu").has_kink and not get_activation("linear").has_kink
    assert not get_activation("gelu").has_kink


def test_custom_callable_works():
    act = get_activation(lambda z: z * jnp.tanh(z))
    np.testing.assert_allclose(act(jnp.asarray(Z)), Z * np.tanh(Z), rtol=1e-14)
    expected = np.tanh(Z) + Z / np.cosh(Z) ** 2
    np.testing.assert_allclose(act.derivative(1)(jnp.asarray(Z)), expected, rtol=1e-12)
    assert not act.scale_invariant and act.closed_form is None
    assert act.pair_expectations(1.0, 1.0, 0.5) is None
    assert get_activation(act) is act


def test_non_elementwise_callables_are_rejected():
    with pytest.raises(TypeError, match="elementwise"):
        get_activation(lambda z: jnp.sum(z))
    with pytest.raises(TypeError, match="elementwise"):
        get_activation(lambda z: jnp.outer(z, z))
    with pytest.raises(TypeError, match="elementwise JAX-differentiable"):
        get_activation(lambda z: np.asarray(z).tolist() + "x")
    with pytest.raises(TypeError, match="activation must be"):
        get_activation(3.0)


# Closed forms: expected values by independent formulas (|z| and sign(z) decompositions,
# see tests/test_gaussian.py) and by scipy quadrature.


def test_arc_cosine_pair_expectations():
    kaa, kbb, kab = np.array([1.0, 0.4, 2.0]), np.array([0.8, 1.5, 2.0]), np.array([0.3, -0.6, 1.1])
    for slope in (0.0, 0.3):
        c, d = (1 + slope) / 2, (1 - slope) / 2
        s = np.sqrt(kaa * kbb)
        t = np.arccos(kab / s)
        ss = c * c * kab + d * d * 2 * s / np.pi * (np.sin(t) + (np.pi / 2 - t) * np.cos(t))
        dd = c * c + d * d * (1 - 2 * t / np.pi)
        got = leaky_relu(slope).pair_expectations(kaa, kbb, kab) if slope else get_activation("relu").pair_expectations(kaa, kbb, kab)
        np.testing.assert_allclose(got[0], ss, rtol=1e-13)
        np.testing.assert_allclose(got[1], dd, rtol=1e-13)


def test_arc_cosine_with_a_zero_variance_sample():
    """z_a = 0 exactly: <sigma(0) sigma(z_b)> = 0, <sigma'(0) sigma'(z_b)> = mid * <sigma'(z_b)> = mid^2."""
    ss, dd = leaky_relu(0.2).pair_expectations(0.0, 1.3, 0.0)
    assert ss == 0.0
    np.testing.assert_allclose(dd, 0.6**2, rtol=1e-15)


def test_erf_arcsine_against_quadrature():
    from scipy import integrate

    cov = np.array([[0.7, 0.25], [0.25, 1.2]])
    inv = np.linalg.inv(cov)
    density = lambda a, b: np.exp(-0.5 * (inv[0, 0] * a * a + 2 * inv[0, 1] * a * b + inv[1, 1] * b * b)) / (  # noqa: E731
        2 * np.pi * math.sqrt(np.linalg.det(cov))
    )
    ss_ref = integrate.dblquad(lambda b, a: erf(a) * erf(b) * density(a, b), -10, 10, -10, 10, epsabs=1e-12)[0]
    derf = lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z)  # noqa: E731
    dd_ref = integrate.dblquad(lambda b, a: derf(a) * derf(b) * density(a, b), -10, 10, -10, 10, epsabs=1e-12)[0]
    ss, dd = get_activation("erf").pair_expectations(cov[0, 0], cov[1, 1], cov[0, 1])
    np.testing.assert_allclose(ss, ss_ref, rtol=1e-9)
    np.testing.assert_allclose(dd, dd_ref, rtol=1e-9)


@pytest.mark.xfail(strict=True, reason="only the output shape is checked; a shape-preserving mixing of entries passes")
def test_shape_preserving_non_elementwise_callable_is_rejected():
    with pytest.raises(TypeError, match="elementwise"):
        get_activation(lambda z: z - jnp.mean(z))


def _dblquad_pair(f, g, cov):
    from scipy import integrate

    inv = np.linalg.inv(cov)
    norm_const = 2 * np.pi * math.sqrt(np.linalg.det(cov))
    density = lambda a, b: np.exp(-0.5 * (inv[0, 0] * a * a + 2 * inv[0, 1] * a * b + inv[1, 1] * b * b)) / norm_const  # noqa: E731
    return integrate.dblquad(lambda b, a: f(a) * g(b) * density(a, b), -14, 14, -14, 14, epsabs=1e-13, epsrel=1e-12)[0]


@pytest.mark.parametrize("cov", [[[0.7, 0.25], [0.25, 1.2]], [[3.5, -1.0], [-1.0, 0.4]], [[2.0, 1.9], [1.9, 2.1]]])
def test_gelu_closed_form_against_quadrature(cov):
    from scipy.special import ndtr  # the normal CDF, without scipy.stats' per-call overhead (the quadrature calls it ~10^6 times)

    cov = np.array(cov)
    gelu = lambda z: z * ndtr(z)  # noqa: E731
    dgelu = lambda z: ndtr(z) + z * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    ss, dd = get_activation("gelu").pair_expectations(cov[0, 0], cov[1, 1], cov[0, 1])
    np.testing.assert_allclose(ss, _dblquad_pair(gelu, gelu, cov), rtol=1e-9)
    np.testing.assert_allclose(dd, _dblquad_pair(dgelu, dgelu, cov), rtol=1e-9)


def test_gelu_closed_form_degenerate_covariances():
    """Identical samples: <gelu(z)^2> by 1-D quad; a zero-variance sample: gelu(0) = 0, gelu'(0) = 1/2."""
    from scipy import integrate
    from scipy.stats import norm

    act = get_activation("gelu")
    v = 3.56
    pdf = lambda z: np.exp(-z * z / (2 * v)) / math.sqrt(2 * math.pi * v)  # noqa: E731
    ss_ref = integrate.quad(lambda z: (z * norm.cdf(z)) ** 2 * pdf(z), -40, 40, epsabs=1e-14, limit=200)[0]
    dd_ref = integrate.quad(lambda z: (norm.cdf(z) + z * norm.pdf(z)) ** 2 * pdf(z), -40, 40, epsabs=1e-14, limit=200)[0]
    ss, dd = act.pair_expectations(v, v, v)
    np.testing.assert_allclose([ss, dd], [ss_ref, dd_ref], rtol=1e-12)
    ss, dd = act.pair_expectations(0.0, 1.3, 0.0)
    assert ss == 0.0 and np.isfinite(dd)
    np.testing.assert_allclose(dd, 0.25, rtol=1e-15)  # gelu'(0) <gelu'(z)> = 1/2 * 1/2


@pytest.mark.parametrize("name", ["gelu", "erf"])
def test_pair_functions_derivatives_are_stein_forms(name):
    """Price's theorem: d/dK_ab <f g> = <f' g'>, 2 d/dK_aa <f g> = <f'' g>, against 2-D quadrature of the derivatives."""
    from ntkit.gaussian import expectation

    act = get_activation(name)
    G, P = act.pair_functions()
    cov = np.array([[1.3, 0.6], [0.6, 0.9]])
    args = tuple(jnp.asarray(v) for v in (cov[0, 0], cov[1, 1], cov[0, 1]))
    d1, d2 = act.derivative(1), act.derivative(2)
    np.testing.assert_allclose(jax.grad(G, argnums=2)(*args), expectation((d1, d1), cov, nodes=160), rtol=1e-11)
    np.testing.assert_allclose(2 * jax.grad(G, argnums=0)(*args), expectation((d2, act.fn), cov, nodes=160), rtol=1e-11)
    np.testing.assert_allclose(P(*args), expectation((d1, d1), cov, nodes=160), rtol=1e-11)
    np.testing.assert_allclose(jax.grad(P, argnums=2)(*args), expectation((d2, d2), cov, nodes=160), rtol=1e-10)


def test_gelu_pair_derivatives_equal_autodiff_and_price_forms():
    """The closed-form derivatives of <gelu gelu> and <gelu' gelu'> against autodiff of the closed
    forms on random covariances (also rho = +-1 and a zero variance), and the mixed fourth-order
    ones against 2-D quadrature of the derivative products (Price's theorem: 4 d2P/dkaa2 = <gelu^(5) gelu'>,
    2 d2P/dkaa dkab = <gelu^(4) gelu''>, d2P/dkab2 = <gelu''' gelu'''>)."""
    from ntkit.gaussian import expectation
    from ntkit.theory.pair_tables import _autodiff_derivatives

    act = get_activation("gelu")
    rng = np.random.default_rng(7)
    kaa, kbb = rng.uniform(0.0, 6.0, 300), rng.uniform(0.0, 6.0, 300)
    rho = rng.uniform(-1.0, 1.0, 300)
    rho[:3], kaa[3] = [1.0, -1.0, 0.0], 0.0
    args = tuple(jnp.asarray(v) for v in (kaa, kbb, rho * np.sqrt(kaa * kbb)))
    hand, auto = act.pair_derivatives()(*args), _autodiff_derivatives(*act.pair_functions())(*args)
    assert set(hand) == set(auto)
    for name in hand:
        np.testing.assert_allclose(hand[name], auto[name], rtol=1e-11, atol=1e-14 * np.abs(auto[name]).max(), err_msg=name)
    cov = np.array([[1.3, 0.6], [0.6, 0.9]])
    d = act.pair_derivatives()(*(jnp.asarray(v) for v in (cov[0, 0], cov[1, 1], cov[0, 1])))
    s = [act.derivative(k) for k in range(6)]
    for value, (f, g) in ((4 * d["p_aa"], (s[5], s[1])), (2 * d["p_ac"], (s[4], s[2])), (d["p_cc"], (s[3], s[3])), (4 * d["g_bb"], (s[0], s[4]))):
        np.testing.assert_allclose(value, expectation((f, g), cov, nodes=160), rtol=1e-10)
