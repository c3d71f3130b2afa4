"""First-order recursions against exact results that do not come from the code under test.

Oracles: PDLT's exact single-input ReLU identities (first-order-fluctuations.md §5), the deep
linear network (V^(l) = 2 (l-1) K^2 for c_w = 1, K1 = 0), the scale-invariance theorem, the
tensor symmetries of the specification, and the independence of the two computation paths.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkit
from ntkit.checks import depth_stability, scale_invariance
from ntkit.theory import NearlyCollinearWarning, at_width, finite_width

X2 = np.array([[1.0, 0.5, -1.2], [0.3, -0.8, 0.4]])
X3 = np.array([[1.0, 0.5, -1.2], [0.3, -0.8, 0.4], [2.0, 1.0, 0.1]])  # different norms, P >= 2
GELU = ntkit.critical("gelu")


def _single(ds, name):
    return ds[name].values[(slice(None),) + (0,) * (ds[name].ndim - 1)]


@pytest.mark.parametrize("lambda_b, lambda_w", [(1.0, 1.0), (0.3, 2.0)])
def test_relu_single_input_identities(lambda_b, lambda_w):
    """PDLT: for ReLU at (0, 2) with one input, K is constant and the tensors obey exact linear recursions."""
    ds = finite_width(ntkit.MLP(depth=6, activation="relu", c_b=0.0, c_w=2.0, lambda_b=lambda_b, lambda_w=lambda_w), X2[:1])
    K, th = _single(ds, "K"), _single(ds, "theta")
    V, D, F, A, B = (_single(ds, n) for n in "VDFAB")
    k = K[0]
    np.testing.assert_allclose(K, k, rtol=1e-13)
    np.testing.assert_allclose(V, [5 * (l - 1) * k**2 for l in range(1, 7)], rtol=1e-12, atol=1e-12)
    lw = lambda_w
    for l in range(5):
        np.testing.assert_allclose(th[l + 1], lambda_b + lw / 2 * k + th[l], rtol=1e-12)
        np.testing.assert_allclose(F[l + 1], F[l] + 2 * k * th[l], rtol=1e-12)
        np.testing.assert_allclose(B[l + 1], B[l] + 2 * th[l] ** 2, rtol=1e-12)
        np.testing.assert_allclose(D[l + 1], D[l] + lw / 2 * V[l] + 2.5 * lw * k**2 + k * th[l], rtol=1e-12)
        expected_A = A[l] + lw**2 / 4 * V[l] + lw * D[l] + 1.25 * lw**2 * k**2 + lw * k * th[l] + th[l] ** 2
        np.testing.assert_allclose(A[l + 1], expected_A, rtol=1e-12)
    np.testing.assert_allclose(_single(ds, "K1"), 0.0, atol=1e-12)
    np.testing.assert_allclose(_single(ds, "theta1"), 0.0, atol=1e-12)


def test_deep_linear_network():
    """sigma(z) = z, c_b = 0, c_w = 1: K is constant, V^(l) = 2 (l-1) K K (all index pairings), K1 = 0."""
    ds = finite_width(ntkit.MLP(depth=5, activation="linear", c_b=0.0, c_w=1.0), X3)
    K = ds["K"].values[0]
    expected_unit = np.einsum("ac,bd->abcd", K, K) + np.einsum("ad,bc->abcd", K, K)
    for l in range(1, 6):
        np.testing.assert_allclose(ds["V"].values[l - 1], (l - 1) * expected_unit, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ds["K1"].values, 0.0, atol=1e-12)


def test_width_ratio_multiplies_only_inherited_terms():
    """Deep linear, one input: V^(3) = 2K^2 + r_2 * 2K^2 with r_2 = n_2 / n_1."""
    mlp = ntkit.MLP(depth=4, activation="linear", c_b=0.0, c_w=1.0)
    equal = finite_width(mlp, X2[:1])
    ratio = finite_width(mlp, X2[:1], widths=(10, 40, 7))
    k = equal["K"].values[0, 0, 0]
    np.testing.assert_allclose(_single(equal, "V")[2], 4 * k**2, rtol=1e-12)
    np.testing.assert_allclose(_single(ratio, "V")[2], 2 * k**2 + 4 * 2 * k**2, rtol=1e-12)
    np.testing.assert_allclose(_single(ratio, "V")[1], _single(equal, "V")[1], rtol=1e-12)  # layer 2: no ratio


@pytest.mark.parametrize("activation", ["relu", "leaky_relu(0.2)"])
def test_scale_invariant_diagonal_corrections_vanish(activation):
    mlp = ntkit.MLP(depth=5, activation=activation, c_b=0.3, c_w=1.7, lambda_b=0.5, lambda_w=1.5)
    report = scale_invariance(mlp, X3)
    assert np.all(report["K1_diagonal_max"].values < 1e-12)
    assert np.all(report["theta1_diagonal_max"].values < 1e-12)
    # ...while the off-diagonal entries are genuinely nonzero from layer 3 on
    assert np.all(report["K1_offdiagonal_max"].values[2:] > 1e-3)
    assert np.all(report["theta1_offdiagonal_max"].values[2:] > 1e-3)


def test_gelu_diagonal_theta1_is_nonzero_from_layer_3():
    ds = finite_width(ntkit.MLP(depth=4, activation="gelu", c_b=GELU.c_b, c_w=GELU.c_w), X3, tensors="mean")
    diag = np.diagonal(ds["theta1"].values, axis1=1, axis2=2)
    np.testing.assert_allclose(diag[:2], 0.0, atol=1e-12)  # layers 1, 2 have no mean correction
    assert np.all(np.abs(diag[2:]) > 1e-3)


@pytest.fixture(scope="module")
def gelu_tensors():
    return finite_width(ntkit.MLP(depth=4, activation="gelu", c_b=GELU.c_b, c_w=GELU.c_w), X3)


def _perm(T, order):
    return np.transpose(T, (0,) + tuple(i + 1 for i in order))


def test_tensor_symmetries(gelu_tensors):
    ds = gelu_tensors
    V, D, F, A, B = (ds[n].values for n in "VDFAB")
    scale = max(np.abs(T).max() for T in (V, D, F, A, B))
    tol = 1e-12 * scale
    for T in (V, A):
        for order in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 3, 0, 1)]:
            np.testing.assert_allclose(T, _perm(T, order), atol=tol)
    for order in [(1, 0, 2, 3), (0, 1, 3, 2)]:
        np.testing.assert_allclose(D, _perm(D, order), atol=tol)
    np.testing.assert_allclose(F, _perm(F, (2, 3, 0, 1)), atol=tol)  # F_acbd = F_bdac
    for order in [(2, 3, 0, 1), (1, 0, 3, 2), (3, 2, 1, 0)]:  # B_acbd = B_bdac = B_cadb = B_dbca
        np.testing.assert_allclose(B, _perm(B, order), atol=tol)
    for name in ("K1", "theta1", "K", "theta"):
        np.testing.assert_allclose(ds[name].values, np.swapaxes(ds[name].values, 1, 2), atol=tol)
    # the spec's non-symmetries are real (an index-order bug would make them hold)
    assert np.abs(D - _perm(D, (2, 3, 0, 1))).max() > 1e-3 * scale
    assert np.abs(F - _perm(F, (1, 0, 2, 3))).max() > 1e-3 * scale
    assert np.abs(B - _perm(B, (1, 0, 2, 3))).max() > 1e-3 * scale


@pytest.mark.parametrize("activation, c_b, c_w", [("gelu", GELU.c_b, GELU.c_w), ("relu", 0.0, 2.0), ("tanh", 0.0, 1.0)])
def test_mean_path_equals_full_tensor_path(activation, c_b, c_w):
    mlp = ntkit.MLP(depth=4, activation=activation, c_b=c_b, c_w=c_w)
    full = finite_width(mlp, X3, tensors="all")
    mean = finite_width(mlp, X3, tensors="mean")
    for name in ("K", "theta", "K1", "theta1"):
        np.testing.assert_allclose(mean[name].values, full[name].values, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(mean[name].values, np.swapaxes(mean[name].values, 1, 2))  # exactly symmetric


def test_tanh_three_sample_tensors_are_converged_in_the_quadrature():
    """Three distinct inputs of variances 1.1..2.3 through tanh: the 3-sample expectations behind V, D,
    F, A, B. The default rule and one with 112 nodes per dimension agree to 1e-10 of each tensor's
    scale (measured 5e-12). The earlier 48-node Gauss–Hermite rule was off by 1.8e-4 (D, layer 2)."""
    x = 1.5 * np.random.default_rng(0).standard_normal((3, 16))
    mlp = ntkit.MLP(depth=3, activation="tanh", c_b=0.0, c_w=1.0)
    default, refined = finite_width(mlp, x), finite_width(mlp, x, nodes=112)
    for name in ("V", "D", "F", "A", "B"):
        scale = np.abs(refined[name].values).max()
        assert np.abs(default[name].values - refined[name].values).max() <= 1e-10 * scale, name


def test_duplicate_inputs_give_identical_rows():
    x = np.vstack([X2, X2[:1]])
    ds = finite_width(ntkit.MLP(depth=3, activation="tanh", c_b=0.1, c_w=1.2), x)
    for name in ("K1", "theta1"):
        np.testing.assert_array_equal(ds[name].values[:, 2], ds[name].values[:, 0])
    np.testing.assert_array_equal(ds["V"].values[:, 2, 1, 0, 2], ds["V"].values[:, 0, 1, 0, 0])


def test_at_width_divides_by_fan_in():
    ds = finite_width(ntkit.MLP(depth=3, activation="tanh", c_b=0.0, c_w=1.0), X2, widths=(8, 32))
    pred = at_width(ds, (8, 32))
    np.testing.assert_allclose(pred["K"].sel(layer=3).values, ds["K"].sel(layer=3) + ds["K1"].sel(layer=3) / 32)
    np.testing.assert_allclose(pred["V"].sel(layer=2).values, ds["V"].sel(layer=2) / 8)
    np.testing.assert_allclose(pred["K"].sel(layer=1).values, ds["K"].sel(layer=1))
    last = at_width(ds.isel(layer=[-1]), (4, 16))  # only the last layer kept (as `ntkit kernels --layers last` writes)
    np.testing.assert_allclose(last["K"].values[0], ds["K"].sel(layer=3) + ds["K1"].sel(layer=3) / 16)


def test_at_width_refuses_widths_of_other_ratios_and_other_results():
    """K1 of layer 3 depends on n_2/n_1: widths in other ratios than ds was computed for would give
    a prediction for neither network, so they are refused; so are results without K1."""
    mlp = ntkit.MLP(depth=3, activation="tanh", c_b=0.0, c_w=1.0)
    with pytest.raises(ValueError, match="width ratios"):
        at_width(finite_width(mlp, X2, widths=(8, 32)), 8)
    with pytest.raises(ValueError, match="width ratios"):
        at_width(finite_width(mlp, X2), (8, 32))
    with pytest.raises(ValueError, match="finite_width"):
        at_width(ntkit.infinite_width(mlp, X2), 8)


def test_inputs_travel_as_a_variable(tmp_path):
    """The inputs are the variable x (a1, input_dim): kept by at_width and by a netCDF round trip."""
    ds = finite_width(ntkit.MLP(depth=2, activation="tanh", c_b=0.0, c_w=1.0), X2, tensors="mean")
    assert ds["x"].dims == ("a1", "input_dim") and "x" not in ntkit.results.config_of(ds)
    np.testing.assert_array_equal(ds["x"].values, X2)
    np.testing.assert_array_equal(at_width(ds, 16)["x"].values, X2)
    ntkit.results.save(ds, tmp_path / "first_order.nc")
    np.testing.assert_array_equal(ntkit.results.load(tmp_path / "first_order.nc")["x"].values, X2)


def test_too_many_inputs_for_full_tensors_is_refused():
    with pytest.raises(ValueError, match="tensors='mean'"):
        finite_width(ntkit.MLP(depth=2, activation="relu"), np.random.default_rng(0).normal(size=(40, 3)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(widths=float("nan")), "positive integer"),
    (dict(widths=[4, -3]), "positive integers"),
    (dict(x=np.full((2, 3), 1e200)), "overflows float64"),
])
def test_bad_widths_and_overflowing_inputs_are_refused(kwargs, message):
    args = dict(x=X2, tensors="mean") | kwargs
    with pytest.raises(ValueError, match=message):
        finite_width(ntkit.MLP(depth=3, activation="relu", c_w=2.0), **args)


@pytest.mark.parametrize("activation, c_w, s", [("erf", np.pi / 4, -1.0), ("sin", 1.0, -1.0), ("tanh", 1.0, -1.0),
                                                ("relu", 2.0, 2.0), ("leaky_relu", 1.5, 0.5), ("linear", 1.0, -3.0)])
def test_collinear_inputs_without_bias_follow_the_exact_scaling(activation, c_w, s):
    """With c_b = lambda_b = 0 and x_c = s x_a (s = -1 for odd activations, s > 0 for scale-invariant
    ones, any s for linear) every network obeys z(x_c) = s z(x_a) and NTK(x_c, .) = s NTK(x_a, .) exactly,
    so every first-order tensor with x_c in k slots is s^k times the one with x_a, computed without
    x_c (a non-singular problem). The pair (x_a, x_c) is singular at every layer: its Stein tables
    are taken along its line. The tolerances date from the 3-sample Gauss–Hermite rule of the
    smooth activations (tanh measured 1.4e-6 on V at layer 2); with the graded 3-sample rule the
    measured deviations are 4.6e-12 (erf), 6.9e-13 (sin) and 2.0e-13 (tanh) of max K. The piecewise
    rule: 1e-11 (measured 1.9e-12 for linear)."""
    mlp = ntkit.MLP(depth=4, activation=activation, c_b=0.0, c_w=c_w, lambda_b=0.0, lambda_w=1.0)
    reference = finite_width(mlp, X2)
    full = finite_width(mlp, np.vstack([X2, s * X2[0]]))
    mean = finite_width(mlp, np.vstack([X2, s * X2[0]]), tensors="mean")
    source, scale = [0, 1, 0], np.array([1.0, 1.0, s])
    tol = {"tanh": 1e-5, "erf": 1e-8, "sin": 1e-8}.get(activation, 1e-11) * np.abs(reference["K"].values).max()
    for name in ("K", "theta", "K1", "theta1", "V", "D", "F", "A", "B"):
        k = reference[name].ndim - 1
        expected = reference[name].values[np.ix_(range(4), *[source] * k)]
        for axis in range(1, k + 1):
            expected = expected * scale.reshape([3 if i == axis else 1 for i in range(k + 1)])
        np.testing.assert_allclose(full[name].values, expected, rtol=0, atol=tol, err_msg=name)
        if k == 2:
            np.testing.assert_allclose(mean[name].values, expected, rtol=0, atol=tol, err_msg=name)
    assert np.abs(reference["V"].sel(layer=4).values).max() > 1e-3 * np.abs(reference["K"].values).max()  # not vacuous


def test_antipodal_pair_is_the_same_among_other_degenerate_inputs():
    """tanh at (0, 1): x and -x computed alone, and among 2x and 0 (so the Gram's 2-D blocks go to
    quadrature), agree. Their kernels are antipodal only to ~1e-13 (diagonal and off-diagonal come
    from different integrals): inverting that pivot gave theta1 off by 7e-3."""
    x = np.array([[0.8, -1.9, 0.4, 1.1]])
    mlp = ntkit.MLP(depth=4, activation="tanh", c_b=0.0, c_w=1.0, lambda_b=0.5)
    alone = finite_width(mlp, np.vstack([x, -x]))
    among = finite_width(mlp, np.vstack([x, -x, 2 * x, 0 * x]))
    for name in ("K1", "theta1"):
        np.testing.assert_allclose(among[name].values[:, :2, :2], alone[name].values, rtol=0, atol=1e-10 * np.abs(alone["K"].values).max())


@pytest.mark.parametrize("activation, c_w", [("tanh", 1.0), ("relu", 2.0), ("leaky_relu(0.2)", 1.9), ("gelu", 1.5)])
def test_zero_input_without_bias_is_computed_and_its_preactivations_vanish(activation, c_w):
    """x = 0 with c_b = 0 has z = 0 at every layer: every statistic with a preactivation slot on it
    (K1; V; D's first pair; F's slots 1 and 3) vanishes exactly, and the mean path equals the full
    tensors. Its NTK (lambda_b > 0) fluctuates; the sampled networks check it (test below)."""
    mlp = ntkit.MLP(depth=4, activation=activation, c_b=0.0, c_w=c_w, lambda_b=0.5)
    x = np.vstack([X2[0], np.zeros(3), X2[1]])
    full, mean = finite_width(mlp, x), finite_width(mlp, x, tensors="mean")
    for name, slots in (("K1", (1, 2)), ("V", (1, 2, 3, 4)), ("D", (1, 2)), ("F", (1, 3))):
        for axis in slots:
            assert np.all(np.take(full[name].values, 1, axis) == 0), (name, axis)
    for name in ("K1", "theta1"):
        np.testing.assert_allclose(mean[name].values, full[name].values, rtol=0, atol=1e-12 * np.abs(full["K"].values).max())
    assert np.all(np.isfinite(full["B"].values)) and full["B"].values[-1, 1, 1, 1, 1] > 0.05  # its NTK fluctuates


def test_nearly_collinear_inputs_through_relu_warn_and_stay_accurate():
    """x and 2x with c_b -> 0: the true theta1 of the pair departs from the collinear value 0 like
    sqrt(c_b) (theta1 / sqrt(c_b) = 1.52, 1.41, 1.38, 1.37 at c_b = 1e-2 ... 1e-5). Below c_b ~ 1e-5
    a warning is raised, and both paths stay within 3.5e-3 of the largest theta1 of that law (the
    error was 3e5 times the scale at c_b = 1e-12 before nearly collinear pairs were taken on their
    line); exactly collinear (c_b = 0) gives 0 without a warning."""
    x = np.vstack([X2[0], 2 * X2[0], X2[1]])
    ratios, scale = [], None
    for c_b in (1e-4, 1e-5, 1e-6, 4e-7, 1e-8, 1e-12, 0.0):
        mlp = ntkit.MLP(depth=4, activation="relu", c_b=c_b, c_w=2.0, lambda_b=0.5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            theta1 = {t: finite_width(mlp, x, tensors=t)["theta1"].values[-1] for t in ("all", "mean")}
        warned = [w for w in caught if issubclass(w.category, NearlyCollinearWarning)]
        assert bool(warned) == (0 < c_b <= 1e-5), c_b
        if warned:
            assert "inputs 0 and 1 are nearly collinear" in str(warned[0].message)
        scale = scale or np.abs(theta1["all"]).max()
        if c_b >= 1e-5:
            ratios.append(theta1["all"][0, 1] / np.sqrt(c_b))
        for t in ("all", "mean"):
            law = ratios[-1] * np.sqrt(c_b)  # within 1% below c_b = 1e-5
            assert abs(theta1[t][0, 1] - law) < 3.5e-3 * scale, (c_b, t, theta1[t][0, 1], law)
    assert 1.3 < ratios[-1] < ratios[0] < 1.45


# --- depth stability (the paper's theorem, with the exponents the spec measured) -------------


def test_relu_critical_fluctuations_grow_linearly():
    d = depth_stability(ntkit.MLP(depth=60, activation="relu", c_b=0.0, c_w=2.0), X2[0])
    for q in ("v", "d", "f", "a", "b"):
        assert 0.9 < d.attrs[f"exponent_{q}"] < 1.1, q
    assert abs(d.attrs["log_rate_K"]) < 1e-10
    np.testing.assert_allclose(np.diff(d["v"].values)[-10:], 5.0, rtol=1e-10)  # v = 5 (l - 1)


def test_tanh_critical_slopes_match_the_specification():
    d = depth_stability(ntkit.MLP(depth=50, activation="tanh", c_b=0.0, c_w=1.0), X2[0])
    layers = d["layer"].values
    window = (layers >= 30) & (layers <= 50)
    slope = {q: np.polyfit(layers[window], d[q].values[window], 1)[0] for q in ("v", "d", "f", "a", "b")}
    assert slope["v"] == pytest.approx(0.659, abs=0.02)
    assert slope["d"] == pytest.approx(-0.16, abs=0.02)
    assert slope["f"] == pytest.approx(0.20, abs=0.02)
    assert slope["a"] == pytest.approx(0.065, abs=0.01)
    assert slope["b"] == pytest.approx(0.20, abs=0.02)


def test_gelu_at_its_fixed_point_d_and_a_grow_faster_than_linear():
    k_star = GELU.K_star
    x = np.full(3, np.sqrt((k_star - GELU.c_b) / GELU.c_w))  # K^(1) = K*
    d = depth_stability(ntkit.MLP(depth=100, activation="gelu", c_b=GELU.c_b, c_w=GELU.c_w), x)
    np.testing.assert_allclose(d["K"].values, k_star, rtol=1e-8)
    for q in ("v", "f", "b"):
        assert 0.85 < d.attrs[f"exponent_{q}"] < 1.15, q
    assert d.attrs["exponent_d"] > 1.3 and d.attrs["exponent_a"] > 1.8


@pytest.mark.parametrize("c_w", [1.8, 2.2])
def test_off_criticality_kernel_is_exponential(c_w):
    d = depth_stability(ntkit.MLP(depth=60, activation="relu", c_b=0.0, c_w=c_w), X2[0])
    assert d.attrs["log_rate_K"] == pytest.approx(np.log(c_w / 2), rel=1e-8)


def test_validation_report_depth_profiles_follow_the_relu_closed_forms():
    """The depth section of make validate's report: relu (0, 2) has K^(l+1) = (C_W / 2) K^(l), so the
    off-critical rate of log K is log 1.1 and the critical one 0; v = 5 (l - 1) gives exponent ~1."""
    from ntkit.studies.first_order_validation import ValidationCase
    from ntkit.studies.validation_report import _depth_markdown, depth_profiles

    case = ValidationCase("relu", 0.0, 2.0)
    profiles = depth_profiles([case], depth=40, off=1.1)
    assert profiles["v"].sizes == {"case": 1, "point": 2, "layer": 40}
    rates = profiles["log_rate_K"].sel(case=case.label).values
    np.testing.assert_allclose(rates, [0.0, np.log(1.1)], atol=1e-10)
    np.testing.assert_allclose(np.diff(profiles["v"].sel(case=case.label, point="critical").values)[1:], 5.0, rtol=1e-10)
    assert 0.9 < float(profiles["exponent_v"].sel(case=case.label, point="critical")) < 1.1
    row = next(line for line in _depth_markdown(profiles, Path("depth.png")).splitlines() if line.startswith(f"| {case.label} | C_W x 1.1 |"))
    assert row.split(" | ")[-2] == "+0.0953"  # the rate of log K: log 1.1


# --- the mean path's tables and chunking ------------------------------------------------------


@pytest.mark.parametrize("activation", ["gelu", "tanh", "erf", "relu", "leaky_relu"])
def test_pair_tables_equal_layer_tables_on_every_pair(activation):
    """Mehler series with per-input coefficients (gelu, tanh, erf), the piecewise closed forms (relu,
    leaky relu) and Price-theorem derivatives of closed forms (by autodiff for gelu and erf, by hand
    for relu and leaky relu) against
    the block-by-block quadrature/Mehler tables of ``layer_tables`` on each 2 x 2 block."""
    from ntkit.activations import get_activation, leaky_relu
    from ntkit.theory.layer_tables import layer_tables
    from ntkit.theory.pair_tables import PairTables, Tile

    act = leaky_relu(0.2) if activation == "leaky_relu" else get_activation(activation)
    x = np.random.default_rng(3).normal(size=(5, 4))
    scale = 0.6 if activation == "tanh" else 1.7  # tanh's series converge up to variances ~3 (poles at ~1/sqrt(K))
    K = 0.2 + scale * x @ x.T / 4
    ia, ib = np.triu_indices(5, 1)
    pair = np.stack([ia, ib])
    blocks = K[pair[:, None], pair[None, :]]  # (2, 2, pairs): the batch axis last
    # layer_tables' 2-D Stein quadrature of tanh is the less accurate side here: C_{01;0} = P_01 is
    # 0.2709696739890267 by the series, 0.2709696739890265 by adaptive 2-D quadrature, 0.2709696740347 by layer_tables
    rtol = 1e-9 if activation == "tanh" else 1e-10
    source = PairTables(act, K)
    assert not source.generic  # the fast path is the one under test
    got = source.tables(Tile(0, 0, 5, 5))  # every pair (a, b), the wanted ones a < b flattened at positions 5 a + b
    want = layer_tables(act, blocks, nodes=None)
    for name in ("S", "P", "M", "N", "A2", "A4", "B2", "B4", "C"):
        g, w = getattr(got, name)[..., 5 * ia + ib], getattr(want, name)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-12 * np.abs(w).max(), err_msg=name)
    assert got.Q is None


def test_piecewise_pair_tables_stay_closed_form_for_collinear_and_zero_inputs():
    """A collinear pair and a zero-variance input keep the closed-form pair tables (taken along the
    pair's line): no layer of 2-D quadratures (which took 68 s instead of 0.6 s for m = 300)."""
    from ntkit.activations import get_activation
    from ntkit.theory.pair_tables import PairTables

    x = np.array([[1.0, 0.5, -0.2], [2.0, 1.0, -0.4], [0.3, -1.0, 0.8], [0.0, 0.0, 0.0]])
    for activation in ("relu", "leaky_relu(0.2)", "linear"):
        assert not PairTables(get_activation(activation), x @ x.T / 3).generic


def test_relu_mean_path_with_a_zero_input_and_a_collinear_pair_equals_the_full_tensors():
    """The closed-form pair path against the four-sample recursion on inputs with a collinear pair
    and the zero input (c_b > 0 keeps every variance positive and breaks the collinearity after
    layer 1); leaky relu's closed forms are checked table by table above."""
    mlp = ntkit.MLP(depth=3, activation="relu", c_b=0.1, c_w=1.9)
    x = np.array([[1.0, 0.5, -0.2], [2.0, 1.0, -0.4], [0.0, 0.0, 0.0]])
    mean, full = finite_width(mlp, x, tensors="mean"), finite_width(mlp, x)
    for name in ("K1", "theta1"):
        np.testing.assert_allclose(mean[name].values, full[name].values, rtol=1e-10, atol=1e-12 * np.abs(full[name].values).max())
    assert np.abs(mean["theta1"].sel(layer=3).values).max() > 1e-3  # not vacuous


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_mean_path_does_not_depend_on_tiling(monkeypatch, activation):
    """One tile holding all pairs against 3 x 3 tiles, the last row and column of tiles moved back
    to overlap their neighbours (7 inputs), stepped 3 tiles per call (the last call filled up with a repeat)."""
    from ntkit.theory import first_order

    mlp = ntkit.MLP(depth=4, activation=activation, c_b=GELU.c_b, c_w=GELU.c_w)
    x = np.random.default_rng(1).normal(size=(7, 3))
    whole = finite_width(mlp, x, tensors="mean")
    monkeypatch.setattr(first_order, "MEAN_TILE", 3)
    monkeypatch.setattr(first_order, "TILES_PER_CALL", 3)
    assert len(first_order._tiles(7, 3)) % 3 != 0
    chunked = finite_width(mlp, x, tensors="mean")
    for name in ("K1", "theta1"):
        np.testing.assert_allclose(chunked[name].values, whole[name].values, rtol=1e-13, atol=1e-14)


@given(st.integers(2, 300), st.integers(1, 120))
@settings(max_examples=60, deadline=None)
def test_mean_path_tiles_cover_every_pair_inside_the_matrix(m, side):
    from ntkit.theory.first_order import _tiles

    covered = np.zeros((m, m), dtype=int)
    for tile in _tiles(m, side):
        assert 0 <= tile.r0 and tile.r0 + tile.rows <= m and 0 <= tile.c0 and tile.c0 + tile.cols <= m
        assert tile.upper().any()  # no tile without a wanted pair
        covered[tile.r0 : tile.r0 + tile.rows, tile.c0 : tile.c0 + tile.cols] += tile.upper()
    assert np.all(covered[np.triu_indices(m, 1)] >= 1) and np.all(np.tril(covered) == 0)


def test_mean_path_compiles_its_pair_step_twice_for_any_depth():
    """One compilation for the step from the Gaussian layer 1 (no Stein tables), one for every later
    layer, even with per-layer hyperparameters (traced, not static) and a structurally zero K1 at
    layer 2 (which, came it out weak-typed, compiled layer 3 apart: 3 s of a cold gelu call)."""
    from ntkit.theory import first_order

    first_order._pair_steps.clear_cache()
    mlp = ntkit.MLP(depth=6, activation="gelu", c_b=0.1, c_w=[1.0, 1.2, 1.4, 1.1, 1.3, 1.5], lambda_w=[0.5, 1.0, 0.7, 0.9, 1.1, 0.6])
    finite_width(mlp, np.random.default_rng(2).normal(size=(5, 3)), tensors="mean")
    assert first_order._pair_steps._cache_size() == 2


def test_sampled_networks_agree_with_every_first_order_tensor():
    """ntkit.sample at width 16 (40,000 critical GeLU networks, depth 3, two inputs): at layers 2 and 3 every
    entry of K1, theta1, V, D, F, A, B agrees with the recursion within 4 stderr plus the O(1/n)
    second-order allowance 3 |prediction| / n (K1 = theta1 = 0 at layer 2 is checked too). For
    V..B the check bites: at the largest layer-3 entry the allowance is under half the prediction.
    K1 and theta1 are only checked for consistency here (their stderr is about a third of the
    prediction); the next test resolves them."""
    mlp = ntkit.MLP(depth=3, activation="gelu", c_b=GELU.c_b, c_w=GELU.c_w, lambda_b=0.5, lambda_w=1.0)
    width = 16
    theory = finite_width(mlp, X2)
    mc = ntkit.sample(mlp, X2, width=width, n_networks=40_000, seed=3, infinite=theory[["K", "theta"]])
    for name in ("K1", "theta1", "V", "D", "F", "A", "B"):
        for layer in (2, 3):
            predicted = theory[name].sel(layer=layer).values
            estimate, stderr = mc[name].sel(layer=layer).values, mc[f"{name}_stderr"].sel(layer=layer).values
            allowance = 4 * stderr + 3 * np.abs(predicted) / width
            assert np.all(np.abs(estimate - predicted) <= allowance), (name, layer, estimate, predicted, stderr)
        if name not in ("K1", "theta1"):  # layer 3: an error of half the prediction would fail
            largest = np.argmax(np.abs(predicted))
            assert allowance.flat[largest] < 0.5 * abs(predicted.flat[largest]), name


@pytest.mark.slow  # 25-30 s a case; make test checks collinear inputs without sampling (test_collinear_inputs_without_bias_follow_the_exact_scaling)
@pytest.mark.parametrize("activation, c_w, s", [("tanh", 1.0, -1.0), ("relu", 2.0, 2.0)])
def test_sampled_networks_agree_on_collinear_and_zero_inputs_at_criticality(activation, c_w, s):
    """At the critical point (c_b = 0) with inputs x, s x (collinear at every layer), 0 (zero variance)
    and y, and lambda_b = 0.5 (so the NTK of s x is not s times that of x): at layer 3 every entry of
    K1, theta1, V, D, F, A, B agrees with 2 MC(n = 32) - MC(n = 16), which removes the O(1/n)
    second-order term (the entries on the zero input at n = 16 alone are off by -0.3/n), within
    4 stderr plus 3 |prediction| / 16^2. The check bites: on the collinear pair some entry of each
    four-sample tensor exceeds 4 stderr (tanh's V: 4.0; the others 10 to 110)."""
    x = np.vstack([X2[0], s * X2[0], np.zeros(3), X2[1]])
    mlp = ntkit.MLP(depth=3, activation=activation, c_b=0.0, c_w=c_w, lambda_b=0.5, lambda_w=1.0)
    theory = finite_width(mlp, x)
    mc = {n: ntkit.sample(mlp, x, width=n, n_networks=40_000, seed=6, infinite=theory[["K", "theta"]]).sel(layer=3) for n in (16, 32)}
    for name in ("K1", "theta1", "V", "D", "F", "A", "B"):
        predicted = theory[name].sel(layer=3).values
        extrapolated = 2 * mc[32][name].values - mc[16][name].values
        stderr = np.hypot(2 * mc[32][f"{name}_stderr"].values, mc[16][f"{name}_stderr"].values)
        assert np.all(np.abs(extrapolated - predicted) <= 4 * stderr + 3 * np.abs(predicted) / 16**2), name
        if predicted.ndim == 4:  # a prediction replaced by 0 on the collinear pair would fail
            on_pair = np.ix_(*[[0, 1]] * 4)
            assert np.max(np.abs(predicted[on_pair]) / stderr[on_pair]) > 4, name


def test_mean_statistics_of_sampled_networks_agree_with_k1_and_theta1():
    """ntkit.sample(statistics="mean") (theta by backpropagating 4 probe neurons per layer) at width 32,
    60,000 critical GeLU networks of depth 4: layer 1 is exact, and at layers 2-4 every entry of K1 and
    theta1 agrees with the recursion within 4 stderr + 3 |prediction| / n, while at layer 4 the
    infinite-width value (K1 = theta1 = 0) is rejected (|z| > 5): the check can fail."""
    mlp = ntkit.MLP(depth=4, activation="gelu", c_b=GELU.c_b, c_w=GELU.c_w, lambda_b=0.5, lambda_w=1.0)
    width = 32
    theory = finite_width(mlp, X2, tensors="mean")
    mc = ntkit.sample(mlp, X2, width=width, n_networks=60_000, seed=4, statistics="mean", infinite=theory[["K", "theta"]])
    assert set(mc.data_vars) == {f"{n}{s}" for n in ("K", "theta", "K1", "theta1") for s in ("", "_stderr")}
    np.testing.assert_allclose(mc["theta"].sel(layer=1), theory["theta"].sel(layer=1), rtol=1e-12)
    for name in ("K1", "theta1"):
        predicted = theory[name].sel(layer=[2, 3, 4]).values
        estimate, stderr = mc[name].sel(layer=[2, 3, 4]).values, mc[f"{name}_stderr"].sel(layer=[2, 3, 4]).values
        assert np.all(np.abs(estimate - predicted) <= 4 * stderr + 3 * np.abs(predicted) / width), (name, estimate, predicted, stderr)
        assert np.max(np.abs(estimate[-1]) / stderr[-1]) > 5, name
