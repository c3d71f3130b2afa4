"""ntkit.dynamics against direct linear solves and explicit loops of kernel gradient-descent steps."""

import numpy as np
import pytest

import ntkit
from ntkit import dynamics as d


@pytest.fixture(scope="module")
def kernels():
    """Infinite-width NTK and NNGP kernel of a relu MLP on 10 train + 4 test inputs, with targets."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(14, 3))
    mlp = ntkit.MLP(depth=3, activation="relu", c_b=0.1, c_w=2.0, lambda_b=0.1, lambda_w=2.0)
    ds = ntkit.infinite_width(mlp, x, layers="last")
    theta, K = ds["theta"].values[0], ds["K"].values[0]
    return dict(theta=theta[:10, :10], theta_s=theta[10:, :10], theta_ss=theta[10:, 10:], K=K[:10, :10], K_s=K[10:, :10],
                K_ss=K[10:, 10:], y=rng.normal(size=10), y2=rng.normal(size=(10, 2)), f0=rng.normal(size=10),
                g0=rng.normal(size=4))


def test_gradient_flow_at_infinite_time_is_ridgeless_regression(kernels):
    k = kernels
    flow = d.gradient_flow(k["theta"], k["y"], [0.0, np.inf], lr=0.3, f0_train=k["f0"], theta_test_train=k["theta_s"], f0_test=k["g0"])
    direct = k["g0"] + k["theta_s"] @ np.linalg.solve(k["theta"], k["y"] - k["f0"])
    np.testing.assert_allclose(flow.test[-1], direct, atol=1e-9)
    np.testing.assert_allclose(flow.train[-1], k["y"], atol=1e-9)
    np.testing.assert_allclose(flow.train[0], k["f0"], atol=1e-12)
    np.testing.assert_allclose(flow.test[0], k["g0"], atol=1e-12)
    ridgeless = d.kernel_regression(k["theta"], k["y"] - k["f0"], k["theta_s"])
    assert ridgeless.method == "pinv"
    np.testing.assert_allclose(k["g0"] + ridgeless.test, flow.test[-1], atol=1e-9)
    late = d.gradient_flow(k["theta"], k["y"], 1e6, lr=1.0, f0_train=k["f0"], theta_test_train=k["theta_s"], f0_test=k["g0"])
    np.testing.assert_allclose(late.test[0], direct, atol=1e-8)


def test_gradient_flow_solves_its_ode(kernels):
    """d f/dt = -eta Theta (f - y) and d f*/dt = -eta Theta* (f - y), by central differences."""
    k, lr, t, h = kernels, 0.05, 0.7, 1e-5
    tr = d.gradient_flow(k["theta"], k["y2"], [t - h, t, t + h], lr=lr, theta_test_train=k["theta_s"])
    np.testing.assert_allclose((tr.train[2] - tr.train[0]) / (2 * h), -lr * k["theta"] @ (tr.train[1] - k["y2"]), atol=1e-6)
    np.testing.assert_allclose((tr.test[2] - tr.test[0]) / (2 * h), -lr * k["theta_s"] @ (tr.train[1] - k["y2"]), atol=1e-6)


def test_gradient_descent_equals_explicit_loop(kernels):
    k = kernels
    lam_max = d.check_learning_rate(k["theta"], 1e-3)
    assert lam_max == pytest.approx(np.linalg.eigvalsh(k["theta"]).max(), rel=1e-12)
    lr = 1.9 / lam_max
    steps = [0, 1, 7, 60]
    pred = d.gradient_descent(k["theta"], k["y"], steps, lr=lr, f0_train=k["f0"], theta_test_train=k["theta_s"], f0_test=k["g0"])
    f, g = k["f0"].copy(), k["g0"].copy()
    for step in range(61):
        if step in steps:
            i = steps.index(step)
            np.testing.assert_allclose(pred.train[i], f, atol=1e-10)
            np.testing.assert_allclose(pred.test[i], g, atol=1e-10)
            assert d.mse_loss(pred.train[i], k["y"]) == pytest.approx(0.5 * np.sum((f - k["y"]) ** 2), rel=1e-9, abs=1e-14)
        residual = f - k["y"]
        f, g = f - lr * k["theta"] @ residual, g - lr * k["theta_s"] @ residual


def test_learning_rate_bound(kernels):
    lam_max = np.linalg.eigvalsh(kernels["theta"]).max()
    with pytest.raises(d.LearningRateError, match="2 / lambda_max"):
        d.gradient_descent(kernels["theta"], kernels["y"], 5, lr=2.0 / lam_max * 1.0001)
    with pytest.raises(ValueError, match="learning rate"):
        d.gradient_flow(kernels["theta"], kernels["y"], 1.0, lr=-1.0)


def test_mode_residuals_decay_at_their_own_rate(kernels):
    k, lr = kernels, 0.02
    times = np.array([0.0, 3.0])
    flow = d.gradient_flow(k["theta"], k["y"], times, lr=lr, f0_train=k["f0"])
    lam, proj = d.mode_residuals(k["theta"], k["y"], flow.train)
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(proj[1], np.exp(-lr * lam * 3.0) * proj[0], atol=1e-12)


def test_gp_posterior_equals_direct_solve(kernels):
    k, noise = kernels, 0.01
    post = d.gp_posterior(k["K"], k["K_s"], k["K_ss"], k["y"], noise=noise)
    a = k["K"] + noise * np.eye(10)
    np.testing.assert_allclose(post.mean, k["K_s"] @ np.linalg.solve(a, k["y"]), atol=1e-10)
    np.testing.assert_allclose(post.cov, k["K_ss"] - k["K_s"] @ np.linalg.solve(a, k["K_s"].T), atol=1e-10)
    assert post.jitter == 0.0


def test_trained_ensemble_reduces_to_gp_posterior_when_theta_is_K(kernels):
    """With Theta = K the ensemble covariance K** + K*K^-1 K K^-1 K*^T - 2 K*K^-1 K*^T is the GP posterior."""
    k = kernels
    ens = d.trained_ensemble(k["K"], k["K_s"], k["K"], k["K_s"], k["K_ss"], k["y"])
    post = d.gp_posterior(k["K"], k["K_s"], k["K_ss"], k["y"])
    np.testing.assert_allclose(ens.mean, post.mean, atol=1e-9)
    np.testing.assert_allclose(ens.cov, post.cov, atol=1e-9)
    ntk = d.trained_ensemble(k["theta"], k["theta_s"], k["K"], k["K_s"], k["K_ss"], k["y"])
    a = k["theta_s"] @ np.linalg.inv(k["theta"])
    np.testing.assert_allclose(ntk.cov, k["K_ss"] + a @ k["K"] @ a.T - a @ k["K_s"].T - k["K_s"] @ a.T, atol=1e-9)


def test_kernel_ridge_regression_equals_direct_solve(kernels):
    k = kernels
    r = d.kernel_regression(k["theta"], k["y2"], k["theta_s"], ridge=0.5)
    np.testing.assert_allclose(r.test, k["theta_s"] @ np.linalg.solve(k["theta"] + 0.5 * np.eye(10), k["y2"]), atol=1e-10)
    assert r.method == "cholesky" and r.jitter == 0.0


def test_duplicate_inputs_need_jitter_and_it_is_reported():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # the last input repeats the first
    K = ntkit.infinite_width(ntkit.MLP(depth=2, activation="tanh", c_b=0.0, c_w=1.0), x, layers="last")["K"].values[0]
    factor = d.cholesky_with_jitter(K)
    assert factor.jitter > 0
    assert factor.jitter <= 1e-6 * np.trace(K) / 4
    y = np.array([1.0, -1.0, 0.5, 1.0])
    np.testing.assert_allclose((K + factor.jitter * np.eye(4)) @ factor.solve(y), y, atol=1e-8)
    np.testing.assert_allclose(factor.L @ factor.L.T, K + factor.jitter * np.eye(4), atol=1e-14)
    r = d.kernel_regression(K, y, ridge=1e-300)
    assert r.jitter > 0
    ridgeless = d.kernel_regression(K, y)  # pseudo-inverse: consistent targets on duplicates are interpolated
    np.testing.assert_allclose(ridgeless.train, y, atol=1e-8)
    assert d.condition_number(K) > 1e12
    with pytest.raises(d.SingularKernelError, match="jitter"):
        d.cholesky_with_jitter(np.zeros((3, 3)) + np.eye(3) * [1.0, 0.0, 0.0] - np.eye(3) * [0, 1.0, 0] * 1e-3)


def test_spectral_summaries_against_closed_forms():
    K = np.diag([4.0, 1.0, 0.25])
    assert d.condition_number(K) == pytest.approx(16.0)
    assert d.effective_dimension(K, 1.0) == pytest.approx(4 / 5 + 1 / 2 + 0.25 / 1.25)
    assert d.participation_ratio(K) == pytest.approx(5.25**2 / (16 + 1 + 0.0625))
    with pytest.raises(ValueError, match="ridge"):
        d.effective_dimension(K, 0.0)


def test_bad_kernels_and_targets():
    with pytest.raises(ValueError, match="square"):
        d.kernel_regression(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="symmetric"):
        d.kernel_regression(np.array([[1.0, 0.5], [0.0, 1.0]]), np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        d.kernel_regression(np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2))
    with pytest.raises(ValueError, match="y must have shape"):
        d.kernel_regression(np.eye(2), np.ones(3))
    with pytest.raises(ValueError, match="positive semi-definite"):
        d.gradient_flow(np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(2), 1.0)
    with pytest.raises(TypeError, match="k_train must hold real numbers"):  # a cast would drop the imaginary part
        d.kernel_regression(np.eye(2) + 0.1j, np.ones(2))
    with pytest.raises(TypeError, match="y must hold real numbers"):
        d.kernel_regression(np.eye(2), np.array([1.0 + 1j, 0.0]))
    with pytest.raises(ValueError, match="f0_test is used only with theta_test_train"):
        d.gradient_flow(np.eye(2), np.ones(2), 1.0, f0_test=np.ones(1))


@pytest.mark.parametrize("rcond", [float("nan"), 1.0, 2.0, 0.0, -1.0, "1e-12"])
def test_bad_rcond_is_refused(rcond):
    """rcond >= 1 or NaN would drop every eigenvalue (all predictions 0), rcond <= 0 would keep
    round-off modes (alpha no longer the minimum-norm solution)."""
    with pytest.raises(ValueError, match="rcond"):
        d.kernel_regression(np.eye(2), np.ones(2), rcond=rcond)
    with pytest.raises(ValueError, match="rcond"):
        d.gradient_flow(np.eye(2), np.ones(2), np.inf, rcond=rcond)


def test_kernels_that_are_not_one_covariance_are_refused():
    """k_test_test too small for the cross-kernel: the posterior variance would come out negative."""
    k_train, k_cross, k_small = np.array([[1.0, 0.5], [0.5, 1.0]]), np.array([[0.9, 0.4], [0.4, 0.9]]), 0.1 * np.eye(2)
    with pytest.raises(ValueError, match="not blocks of one positive semi-definite kernel"):
        d.gp_posterior(k_train, k_cross, k_small, np.ones(2))
    with pytest.raises(ValueError, match="not blocks of one positive semi-definite kernel"):
        d.trained_ensemble(k_train, k_cross, k_train, k_cross, k_small, np.ones(2))
    k_test = k_cross @ np.linalg.solve(k_train, k_cross.T) + 0.1 * np.eye(2)  # Schur complement 0.1 I: accepted
    assert np.all(np.linalg.eigvalsh(np.block([[k_train, k_cross.T], [k_cross, k_test]])) > 0)
    np.testing.assert_allclose(d.gp_posterior(k_train, k_cross, k_test, np.ones(2)).cov, 0.1 * np.eye(2), atol=1e-12)
