"""The command line: files written, values equal to the library's, one-line errors with exit code 2."""

import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import ntkit
from ntkit.cli import app
from ntkit.cli._inputs import EXAMPLE_INPUTS
from ntkit.results import config_of, load

runner = CliRunner()
X = np.array([[1.0, -0.5, 0.3], [0.2, 1.1, -0.7], [-0.9, 0.3, 0.6]])


def run(*args):
    """Invoke the CLI in this process (without the on-disk compilation cache, which is global)."""
    return runner.invoke(app, ["--no-compilation-cache", *(str(a) for a in args)])


def test_commands_keep_compiled_programs_on_disk(tmp_path):
    """Each command is a new process: its compiled programs go to NTKIT_CACHE_DIR for the next
    one, unless --no-compilation-cache."""
    command = [sys.executable, "-m", "ntkit.cli"]
    kernels = ["kernels", "--activation", "erf"]
    cache = tmp_path / "cache"
    subprocess.run(command + kernels, env={**os.environ, "NTKIT_CACHE_DIR": str(cache)}, check=True, capture_output=True)
    assert any(cache.iterdir())
    unused = tmp_path / "unused"
    subprocess.run(command + ["--no-compilation-cache"] + kernels, env={**os.environ, "NTKIT_CACHE_DIR": str(unused)},
                   check=True, capture_output=True)
    assert not unused.exists()


def test_kernels_writes_the_library_result(tmp_path):
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "kernels.nc"
    result = run("kernels", "--inputs", tmp_path / "x.npy", "--activation", "tanh", "--c-b", 0.1, "--c-w", 1.5,
                 "--lambda-b", 0.5, "--lambda-w", 2.0, "--depth", 4, "--out", out)
    assert result.exit_code == 0, result.output
    ds = load(out)
    assert ds["K"].dims == ds["theta"].dims == ("layer", "a1", "a2")
    assert list(ds["layer"].values) == [1, 2, 3, 4] and ds.sizes["a1"] == 3
    expected = ntkit.infinite_width(ntkit.MLP(4, "tanh", c_b=0.1, c_w=1.5, lambda_b=0.5, lambda_w=2.0), X)
    np.testing.assert_array_equal(ds["K"].values, expected["K"].values)
    np.testing.assert_array_equal(ds["theta"].values, expected["theta"].values)
    assert config_of(ds)["mlp"]["c_w"] == [1.5] * 4
    # the printed table shows the last layer
    assert "K (layer 4" in result.output and "theta (layer 4" in result.output
    assert f"{expected['K'].values[-1, 0, 1]:.6g}" in result.output


def test_kernels_from_csv_at_criticality_last_layer(tmp_path):
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    out = tmp_path / "k.nc"
    result = run("kernels", "--inputs", tmp_path / "x.csv", "--activation", "gelu", "--critical", "--depth", 3,
                 "--layers", "last", "--out", out)
    assert result.exit_code == 0, result.output
    ds = load(out)
    assert list(ds["layer"].values) == [3]
    c_b, c_w = ntkit.critical("gelu")
    expected = ntkit.infinite_width(ntkit.MLP(3, "gelu", c_b=c_b, c_w=c_w), X, layers="last")
    np.testing.assert_allclose(ds["theta"].values, expected["theta"].values, rtol=1e-15)


def test_kernels_prints_a_library_warning_as_one_line(tmp_path):
    """relu with x and 2x at c_b = 1e-8 (nearly collinear): the result is written and the warning is
    one yellow ``warning:`` line on stderr; exactly collinear (c_b = 0) gives none."""
    x = np.vstack([X[0], 2 * X[0], X[1]])
    np.save(tmp_path / "x.npy", x)
    for c_b, warned in ((1e-8, True), (0.0, False)):
        result = run("kernels", "--inputs", tmp_path / "x.npy", "--order", 1, "--c-b", c_b, "--c-w", 2.0, "--depth", 4)
        assert result.exit_code == 0, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == warned, result.stderr
        if warned:
            assert lines[0].startswith("warning: inputs 0 and 1 are nearly collinear at layer 2") and "'relu'" in lines[0], result.stderr
        assert "theta1 (layer 4)" in result.stdout


def test_kernels_without_inputs_uses_the_example():
    result = run("kernels", "--activation", "relu", "--c-w", 2.0)
    assert result.exit_code == 0, result.output
    expected = ntkit.infinite_width(ntkit.MLP(3, "relu", c_w=2.0), EXAMPLE_INPUTS)
    assert f"{expected['theta'].values[-1, 2, 3]:.6g}" in result.output


def test_kernels_table_is_truncated_for_many_inputs(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(12, 3)))
    result = run("kernels", "--inputs", tmp_path / "x.npy", "--c-w", 2.0)
    assert result.exit_code == 0, result.output
    assert "first 8 of 12 inputs" in result.output


def test_critical_prints_the_point():
    result = run("critical", "gelu")
    assert result.exit_code == 0, result.output
    point = ntkit.critical("gelu")
    for value in (point.c_b, point.c_w, point.K_star):
        assert f"{value:.10g}" in result.output
    assert "nontrivial" in result.output and "chi_perp" in result.output


@pytest.mark.slow
def test_demo_runs(tmp_path, monkeypatch):
    """The full demo (about 4 minutes): summary table and the paths it wrote."""
    monkeypatch.chdir(tmp_path)
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "z inf." in result.output and "report_html" in result.output
    assert (tmp_path / "ntkit_demo" / "study.nc").is_file()


def _bad_files(tmp_path):
    np.save(tmp_path / "vector.npy", np.arange(3.0))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "words.csv").write_text("x,y\n1,2\n")
    (tmp_path / "nan.csv").write_text("1,2\nnan,3\n")
    (tmp_path / "x.txt").write_text("1,2\n")
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (["kernels", "--inputs", "{tmp}/missing.npy"], "no inputs file"),
        (["kernels", "--inputs", "{tmp}/vector.npy"], "shape (m, n_0)"),
        (["kernels", "--inputs", "{tmp}/objects.npy"], "not a plain numeric .npy"),
        (["kernels", "--inputs", "{tmp}/words.csv"], "not a numeric CSV"),
        (["kernels", "--inputs", "{tmp}/nan.csv"], "NaN or inf"),
        (["kernels", "--inputs", "{tmp}/x.txt"], ".npy or .csv"),
        (["kernels", "--activation", "swishy"], "unknown activation"),
        (["kernels", "--c-w", "0"], "c_w must be > 0"),
        (["kernels", "--c-b", "-1"], "c_b is a variance"),
        (["kernels", "--depth", "0"], "depth must be an integer >= 1"),
        (["kernels", "--critical", "--c-w", "2"], "either --critical or --c-b/--c-w"),
        (["kernels", "--critical", "--activation", "sigmoid"], "sigmoid has no critical point"),
        (["critical", "sigmoid"], "sigmoid has no critical point"),
        (["critical", "softplus"], "softplus has no critical point"),
        (["critical", "swishy"], "unknown activation"),
    ],
)
def test_errors_are_one_red_line_and_exit_2(tmp_path, args, message):
    _bad_files(tmp_path)
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_bad_layers_choice_is_a_usage_error():
    result = run("kernels", "--layers", "middle")
    assert result.exit_code == 2
    assert "middle" in result.output


@pytest.mark.parametrize("args, message", [
    (("--widths", "4,8,16"), "at least two distinct widths >= 16"),  # refused before any sampling
    (("--widths", "16,abc"), "--widths must be comma-separated"),
    (("--widths", "16,32", "--networks", "0"), "--networks must be >= 2"),  # 0 is not 'the default'
])
def test_validate_refuses_bad_options_before_sampling(args, message, tmp_path):
    result = run("validate", "--out", tmp_path, *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "validation").exists()


def test_huge_leaky_relu_slope_is_an_error_not_a_traceback():
    result = run("critical", "leaky_relu(1e300)")
    assert result.exit_code == 2 and "slope must be finite" in result.output


@pytest.mark.parametrize("command", [("kernels",), ("sample", "--width", "4", "--networks", "8", "--depth", "2")])
def test_unwritable_output_is_refused_before_computing(command, tmp_path):
    """An --out that is a directory fails at once, naming it (not after the work, with a temporary name)."""
    result = run(*command, "--out", tmp_path)
    text = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 2 and "cannot write" in text and "it is a directory" in text
