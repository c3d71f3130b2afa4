"""Real training: the parameterizations' kernels against explicit Jacobians, one GD step against the
kernel update, and (slow) the NTK prediction's agreement and the kernel's motion vs width."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkit
from ntkit.training import Network, train

MLP = ntkit.MLP(depth=3, activation="tanh", c_b=0.2, c_w=1.5, lambda_b=0.2, lambda_w=1.5)


def data(m=6, m_test=3, n_in=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n_in)), np.sin(rng.normal(size=m)), rng.normal(size=(m_test, n_in))


def explicit_weighted_ntk(net, params, x):
    """sum_p (eta_p / eta) J_p J_p^T with J from jax.jacobian of the whole batch."""
    jac = jax.jacobian(net.apply)(params, jnp.asarray(x))
    total = np.zeros((len(x), len(x)))
    for j_layer, s_layer in zip(jac, net.lr_scales()):
        for key in ("w", "b"):
            j = np.asarray(j_layer[key]).reshape(len(x), -1)
            total += s_layer[key] * j @ j.T
    return total


@pytest.mark.parametrize("parameterization", ["ntk", "mup"])
def test_weighted_kernel_equals_explicit_jacobians(parameterization):
    x, _, _ = data()
    net = Network(MLP, n_in=4, width=24, parameterization=parameterization)
    params = net.init(jax.random.PRNGKey(0))
    ref = explicit_weighted_ntk(net, params, x)
    np.testing.assert_allclose(net.ntk(params, x), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_mup_scales():
    net = Network(MLP, n_in=4, width=64, parameterization="mup")
    assert net.multipliers(3) == (pytest.approx(np.sqrt(0.2)), pytest.approx(np.sqrt(1.5) / 64))
    assert net.multipliers(2) == (pytest.approx(np.sqrt(0.2)), pytest.approx(np.sqrt(1.5 / 64)))
    assert net.lr_scales()[0] == {"w": 64.0, "b": 64.0} and net.lr_scales()[-1] == {"w": 64.0, "b": 1.0}


@pytest.mark.parametrize("parameterization", ["ntk", "mup"])
def test_one_small_step_moves_outputs_by_the_kernel(parameterization):
    """f_1 - f_0 = -eta Theta_0 (f_0 - y) + O(eta^2): the residual shrinks like eta^2."""
    x, y, x_test = data()
    net = Network(MLP, n_in=4, width=32, parameterization=parameterization)
    params = net.init(jax.random.PRNGKey(1))
    xall = np.concatenate([x, x_test])
    theta = net.ntk(params, xall)
    errors = []
    for lr in (1e-3, 5e-4):
        rec = train(net, params, x, y, x_test, lr=lr, steps=1, ntk_at=[0])
        np.testing.assert_allclose(rec.ntk[0], theta, atol=1e-12)
        linear = -lr * theta[:, :6] @ (rec.f_train[0] - y)
        actual = np.concatenate([rec.f_train[1] - rec.f_train[0], rec.f_test[1] - rec.f_test[0]])
        errors.append(np.abs(actual - linear).max() / np.abs(linear).max())
        assert rec.loss[0] == pytest.approx(0.5 * np.sum((rec.f_train[0] - y) ** 2))
    assert errors[0] < 1e-2
    assert 1.8 < errors[0] / errors[1] < 2.2  # relative error O(eta): halves with eta


def test_training_errors():
    x, y, x_test = data()
    net = Network(MLP, n_in=4, width=8)
    params = net.init(jax.random.PRNGKey(2))
    with pytest.raises(ValueError, match="parameterization"):
        Network(MLP, n_in=4, width=8, parameterization="standard")
    with pytest.raises(ValueError, match="width"):
        Network(MLP, n_in=4, width=0)
    with pytest.raises(ValueError, match="n_in"):
        train(net, params, x[:, :3], y, x_test[:, :3], lr=0.1, steps=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(net, params, x, y, x_test, lr=1e3, steps=200, record=[200])


@pytest.mark.slow
def test_ntk_prediction_agreement_shrinks_with_width_and_kernel_moves_less_than_mup():
    """At widths 128, 512, 2048 (4 seeds each) (NTK parameterization) the end-of-training test outputs approach the
    NTK prediction (error falling with width, < 0.1 rms(y) at 2048), and the kernel's relative change
    falls with width faster than in muP."""
    from ntkit.studies.dynamics_study import DynamicsStudyConfig, run_dynamics_study

    cfg = DynamicsStudyConfig(widths=(128, 512, 2048), seeds=4, steps=300, n_train=16, n_test=8, records=8, ntk_records=1)
    ds, _ = run_dynamics_study(cfg, write=False)
    err = ds["test_error"].values
    assert err[0] > err[1] > err[2] and err[2] < 0.1
    slopes = ds["ntk_change_exponent"]
    assert float(slopes.sel(parameterization="ntk")) < -0.3
    assert float(slopes.sel(parameterization="ntk")) < float(slopes.sel(parameterization="mup")) - 0.2


def test_dynamics_study_cli_writes_data_and_figures(tmp_path):
    """``ntkit dynamics-study`` on a tiny setting: table, netCDF variables, one PNG+SVG per figure,
    and the prediction columns are the kernel-GD prediction from the stored NTK."""
    from typer.testing import CliRunner

    from ntkit.cli import app
    from ntkit.results import config_of, load
    from ntkit.studies.dynamics_figures import DYNAMICS_FIGURES

    out = tmp_path / "dyn"
    result = CliRunner().invoke(app, ["--no-compilation-cache", "dynamics-study", "--widths", "16,32", "--seeds", "1", "--steps", "20",
                                      "--n-train", "6", "--n-test", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "end of training" in result.output and "kernel change" in result.output
    for name in DYNAMICS_FIGURES:
        assert (out / f"dynamics_{name}.png").is_file() and (out / f"dynamics_{name}.svg").is_file()
    ds = load(out / "dynamics_study.nc")
    assert {"test_error", "ntk_change", "ntk_change_exponent"} <= set(ds.data_vars)
    assert ds["test_error"].dims == ("width",) and list(ds["width"].values) == [16, 32]
    # the predictions, step by step: f <- f - lr Theta_tt (f - y), g <- g - lr Theta_et (f - y), from the networks' f_0
    m, lr = ds.sizes["train"], config_of(ds)["lr_ntk"]
    theta, y = ds["theta"].values, ds["y_train"].values
    steps = ds["step"].values
    start = ds.sel(parameterization="ntk", step=0)
    for width in (16, 32):
        f, g = start["f_train"].sel(width=width, seed=0).values, start["f_test"].sel(width=width, seed=0).values
        for t in range(steps[-1] + 1):
            if t in steps:
                at = ds.sel(width=width, seed=0, step=t)
                np.testing.assert_allclose(at["pred_train"].values, f, rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(at["pred_test"].values, g, rtol=1e-10, atol=1e-12)
            f, g = f - lr * theta[:m, :m] @ (f - y), g - lr * theta[m:, :m] @ (f - y)
        last = ds.sel(width=width, parameterization="ntk", step=steps[-1])
        error = np.sqrt(np.mean((last["f_test"] - last["pred_test"]).values ** 2)) / np.sqrt(np.mean(ds["y_test"].values ** 2))
        assert float(ds["test_error"].sel(width=width)) == pytest.approx(error, rel=1e-12)
