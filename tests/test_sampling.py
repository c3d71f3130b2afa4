"""Tests of ntkit.sampling: sampled networks against closed forms, calibrated errors, determinism.

Reference values are computed here independently of the sampler: layer 1 in closed form, layer 2
of ReLU from the arc-cosine kernels (K, theta) and from ntkit.theory (V, D, F, A, B are exact at
layer 2 at any width, since layer-1 neurons are independent Gaussians).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ntkit
from ntkit.activations import get_activation
from ntkit.results import save
from ntkit.sampling import remove_checkpoints, sample
from ntkit.sampling.checkpoint import CheckpointMismatch

X3 = np.array([[1.0, 0.5, -1.2], [0.3, -0.8, 0.4], [1.6, 0.9, 0.1]])  # different norms, n_0 = 3
RELU = ntkit.MLP(depth=2, activation="relu", c_b=0.1, c_w=2.0, lambda_b=0.5, lambda_w=1.5)
FLUCTUATIONS = ("V", "D", "F", "A", "B")
SMALL = ntkit.MLP(depth=2, activation="tanh", c_b=0.1, c_w=1.5)
X2 = X3[:2]


def identical(a, b) -> bool:
    return set(a.data_vars) == set(b.data_vars) and all(np.array_equal(a[v].values, b[v].values) for v in a.data_vars)


@pytest.fixture(scope="module")
def relu_run():
    return sample(RELU, X3, width=8, n_networks=20_000, seed=3, infinite=ntkit.infinite_width(RELU, X3))


def test_layer1_is_gaussian_with_deterministic_ntk(relu_run):
    gram = X3 @ X3.T / 3
    one = relu_run.sel(layer=1)
    K1 = RELU.c_b_at(1) + RELU.c_w_at(1) * gram
    assert np.all(np.abs(one["K"] - K1) <= 4 * one["K_stderr"])
    assert np.all(one["K_stderr"] < 0.02 * np.abs(K1).max())  # a tight check, not a vacuous one
    np.testing.assert_allclose(one["theta"], RELU.lambda_b_at(1) + RELU.lambda_w_at(1) * gram, rtol=1e-12)
    for name in FLUCTUATIONS:
        est, err = one[name].values, one[f"{name}_stderr"].values
        assert np.all(np.abs(est) <= 4 * err + 1e-10), name


def test_layer2_relu_matches_arc_cosine_and_exact_layer2_tensors(relu_run):
    act = get_activation("relu")
    gram = X3 @ X3.T / 3
    K1, theta1 = RELU.c_b_at(1) + RELU.c_w_at(1) * gram, RELU.lambda_b_at(1) + RELU.lambda_w_at(1) * gram
    d = np.diag(K1)
    ss, dd = act.pair_expectations(d[:, None], d[None, :], K1)
    K2 = RELU.c_b_at(2) + RELU.c_w_at(2) * ss
    theta2 = RELU.lambda_b_at(2) + RELU.lambda_w_at(2) * ss + RELU.c_w_at(2) * dd * theta1
    two = relu_run.sel(layer=2)
    for name, exact in (("K", K2), ("theta", theta2)):
        z = (two[name].values - exact) / two[f"{name}_stderr"].values
        assert np.all(np.abs(z) < 4), (name, z)
    theory = ntkit.finite_width(RELU, X3).sel(layer=2)
    for name in FLUCTUATIONS:
        exact, est, err = theory[name].values, two[name].values, two[f"{name}_stderr"].values
        assert np.all(np.abs(est - exact) <= 4 * err), (name, np.max(np.abs(est - exact) / err))
        assert np.max(err) < 0.1 * np.max(np.abs(exact)), name  # errors small enough to mean something
    for name in ("K1", "theta1"):  # no mean correction at layer 2: E z z = K^(2) exactly
        assert np.all(np.abs(two[name].values) <= 4 * two[f"{name}_stderr"].values), name


def test_slot_order_of_F_and_B_against_theory(relu_run):
    """F_acbd and B_acbd are not symmetric under a <-> c; the estimate must follow the spec's slots."""
    theory = ntkit.finite_width(RELU, X3).sel(layer=2)
    two = relu_run.sel(layer=2)
    for name in ("F", "B"):
        swapped = theory[name].values.transpose(1, 0, 2, 3)  # a <-> c
        z = np.abs(two[name].values - swapped) / two[f"{name}_stderr"].values
        assert z.max() > 8, name  # the wrong slot order is rejected by the data


def test_stderr_calibrated_over_200_seeds():
    """z-scores of theta (a mean) and V (a cumulant) at layer 2 against exact values: mean 0, std 1."""
    theory = ntkit.finite_width(SMALL, X2).sel(layer=2)
    inf = ntkit.infinite_width(SMALL, X2)
    zs = {"theta": [], "V": []}
    for seed in range(200):
        ds = sample(SMALL, X2, width=6, n_networks=512, seed=seed, infinite=inf).sel(layer=2)
        zs["theta"].append((ds["theta"].values[0, 1] - inf["theta"].sel(layer=2).values[0, 1]) / ds["theta_stderr"].values[0, 1])
        zs["V"].append((ds["V"].values[0, 1, 0, 1] - theory["V"].values[0, 1, 0, 1]) / ds["V_stderr"].values[0, 1, 0, 1])
    for name, z in zs.items():
        z = np.asarray(z)
        # 200 draws: the mean has stderr 0.07, the std about 0.05; errors off by 25% would fail
        assert abs(z.mean()) < 0.3, (name, z.mean())
        assert abs(z.std(ddof=1) - 1) < 0.2, (name, z.std(ddof=1))


def test_same_result_for_any_batch_size_and_worker_count():
    kwargs = dict(width=5, n_networks=1000, seed=11, chunk_size=256)  # four chunks
    ref = sample(SMALL, X2, threads=1, **kwargs)
    assert identical(ref, sample(SMALL, X2, **kwargs))  # one thread per available core
    assert identical(ref, sample(SMALL, X2, threads=3, **kwargs))
    assert identical(ref, sample(SMALL, X2, batch_size=37, **kwargs))
    assert identical(ref, sample(SMALL, X2, batch_size=256, **kwargs))
    with ThreadPoolExecutor(3) as pool:
        assert identical(ref, sample(SMALL, X2, executor=pool, batch_size=64, **kwargs))
    assert identical(ref, sample(SMALL, X2, workers=2, **kwargs))
    assert not identical(ref, sample(SMALL, X2, **{**kwargs, "seed": 12}))


def test_unequal_widths_enter_the_networks():
    """Deep linear network (c_w = 1), one input: given layer l, the next layer's neurons are iid
    N(0, G_l) with G_l = |z^(l)|^2 / n_l, so G_2 = K chi2_(n_1) chi2_(n_2) / (n_1 n_2) and the
    normalised cumulant of layer 3 is exactly n_2 Var(G_2) = (2 + 2 n_2 / n_1 + 4 / n_1) K^2, at any
    width: 11 K^2 for widths (4, 16), 5 K^2 if the second width were taken equal to the first."""
    linear = ntkit.MLP(depth=3, activation="linear", c_b=0.0, c_w=1.0)
    ds = sample(linear, X2[:1], width=(4, 16), n_networks=20_000, seed=1)
    k = float(X2[0] @ X2[0]) / X2.shape[1]
    V, stderr = (float(ds[name].sel(layer=3).values[0, 0, 0, 0]) for name in ("V", "V_stderr"))
    assert abs(V - 11 * k**2) < 4 * stderr
    assert min(abs(V - 5 * k**2), abs(V - 4.25 * k**2)) > 4 * stderr  # widths (4, 4) or (16, 16) are ruled out


def test_float32_networks_agree_with_float64():
    deep = ntkit.MLP(depth=3, activation="tanh", c_w=1.2)
    a = sample(deep, X2, width=(3, 7), n_networks=2000, seed=1)
    b = sample(deep, X2, width=(3, 7), n_networks=2000, seed=2, dtype="float32")
    diff = np.abs(a["K"] - b["K"]) / np.hypot(a["K_stderr"], b["K_stderr"])
    assert float(diff.max()) < 4.5
    assert a["V"].dtype == np.float64 and b["V"].dtype == np.float64


def test_mean_statistics_equal_the_full_run_when_every_neuron_is_probed():
    """statistics="mean" backpropagates min(output_width, n_l) probe neurons per layer; with hidden
    widths 4 and 3 and 4 outputs that is every neuron, so K and theta (and their errors) must equal
    the full run's, which averages Theta_ii from the n x n NTK recursion: the same networks."""
    deep = ntkit.MLP(depth=3, activation="gelu", c_b=0.1, c_w=1.7, lambda_b=0.5, lambda_w=1.5)
    full = sample(deep, X3, width=(4, 3), n_networks=64, seed=1, output_width=4)
    mean = sample(deep, X3, width=(4, 3), n_networks=64, seed=1, output_width=4, statistics="mean")
    assert set(mean.data_vars) == {"K", "K_stderr", "theta", "theta_stderr"}
    for name in mean.data_vars:
        np.testing.assert_allclose(mean[name].values, full[name].values, rtol=1e-12, atol=1e-14, err_msg=name)
    wider = sample(deep, X3, width=(9, 3), n_networks=64, seed=1, output_width=4, statistics="mean")
    np.testing.assert_allclose(wider["theta"].sel(layer=3).values, sample(deep, X3, width=(9, 3), n_networks=64, seed=1)
                               ["theta"].sel(layer=3).values, rtol=1e-12)  # the output layer: every neuron, any width


def test_checkpoint_survives_sigkill_and_resumes_exactly(tmp_path):
    path = tmp_path / "run.nc"
    args = dict(width=4, n_networks=120_000, seed=5, chunk_size=2048, checkpoint_every=0.0)
    script = textwrap.dedent(f"""
        import numpy as np, ntkit
        mlp = ntkit.MLP(depth=2, activation="tanh", c_b=0.1, c_w=1.5)
        ntkit.sample(mlp, np.array({X2.tolist()}), checkpoint={str(path)!r}, **{args!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from ntkit.results import load
    done = int(load(path).attrs["chunks_done"])
    assert 0 < done < 120_000 // 2048, done  # really interrupted half-way
    reports = []
    resumed = sample(SMALL, X2, checkpoint=path, progress=lambda done_, total: reports.append(done_), **args)
    assert reports[0] == done * 2048 and len(reports) == 1 + (-(-120_000 // 2048) - done)  # resumed, not recomputed
    assert identical(resumed, sample(SMALL, X2, **args))
    with pytest.raises(CheckpointMismatch, match="different arguments.*seed"):
        sample(SMALL, X2, checkpoint=path, **{**args, "seed": 6})


def test_remove_checkpoints_deletes_only_sampling_checkpoints(tmp_path):
    folder = tmp_path / "checkpoints"
    sample(SMALL, X2, width=3, n_networks=64, checkpoint=folder / "a.nc")
    sample(SMALL, X2, width=4, n_networks=64, checkpoint=folder / "b.nc")
    remove_checkpoints(folder)
    assert not folder.exists()
    sample(SMALL, X2, width=3, n_networks=64, checkpoint=folder / "a.nc")
    save(sample(SMALL, X2, width=3, n_networks=64), folder / "result.nc")  # a result, not a checkpoint
    (folder / "notes.nc").write_text("not netCDF")
    remove_checkpoints(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.nc", "result.nc"]
    remove_checkpoints(tmp_path / "never-made")  # nothing to do


def test_progress_reports_networks_done():
    calls = []
    sample(SMALL, X2, width=3, n_networks=600, chunk_size=256, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 600), (256, 600), (512, 600), (600, 600)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(width=0), "positive integers"),
        (dict(width=1), ">= 2"),
        (dict(width=(4, 4)), "hidden widths"),
        (dict(width=float("nan")), "positive integer"),
        (dict(n_networks=1), "n_networks"),
        (dict(x=np.full((2, 3), 1e200)), "network 0 overflows"),
        (dict(x=np.array([[1.0, np.nan, 0.0]])), "NaN"),
        (dict(x=np.ones(3)), "shape"),
        (dict(seed=-1), "seed"),
        (dict(dtype="float16"), "dtype"),
        (dict(statistics="means"), "statistics"),
        (dict(batch_size=0), "batch_size"),
        (dict(workers=0), "workers"),
        (dict(threads=0), "threads"),
        (dict(checkpoint_every=float("nan")), "checkpoint_every"),
        (dict(checkpoint_every=-1.0), "checkpoint_every"),
        (dict(infinite=ntkit.infinite_width(RELU, X3[:1])), "different inputs"),
        (dict(infinite=ntkit.infinite_width(RELU, 3 * X3)), "different inputs"),  # same shape: K1 would be silently wrong
        (dict(infinite=ntkit.infinite_width(ntkit.MLP(depth=RELU.depth, activation="tanh"), X3)), "different MLP"),
        (dict(infinite=ntkit.infinite_width(RELU, X3, layers="last")), "every layer"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    args = dict(mlp=RELU, x=X3, width=4, n_networks=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sample(**args)


def test_dask_cluster_gives_the_serial_result_bit_for_bit():
    distributed = pytest.importorskip("distributed")
    kwargs = dict(width=5, n_networks=1000, seed=11, chunk_size=256)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = sample(SMALL, X2, executor=client.get_executor(), **kwargs)
    assert identical(remote, sample(SMALL, X2, **kwargs))


def test_cli_sample_writes_estimates_and_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from ntkit.cli import app
    from ntkit.results import load

    out = tmp_path / "mc.nc"
    runner = CliRunner()
    result = runner.invoke(app, ["--no-compilation-cache", "sample", "--activation", "tanh", "--depth", "2", "--width", "5", "--networks", "300",
                                 "--seed", "11", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "layer 2" in result.output and "theta" in result.output
    ds = load(out)
    direct = sample(ntkit.MLP(depth=2, activation="tanh"), ntkit.cli._inputs.EXAMPLE_INPUTS, width=5, n_networks=300, seed=11)
    np.testing.assert_array_equal(ds["V"].values, direct["V"].values)
    means = runner.invoke(app, ["--no-compilation-cache", "sample", "--activation", "tanh", "--depth", "2", "--width", "5", "--networks", "300",
                                "--seed", "11", "--statistics", "mean"])
    assert means.exit_code == 0 and "theta" in means.output and "V " not in means.output, means.output
    wrong = runner.invoke(app, ["--no-compilation-cache", "sample", "--networks", "10", "--statistics", "cumulants"])
    assert wrong.exit_code == 2 and "statistics" in wrong.output
    bad = runner.invoke(app, ["--no-compilation-cache", "sample", "--width", "0", "--networks", "10"])
    assert bad.exit_code == 2 and "error:" in bad.output and "width" in bad.output
