"""The width study end to end: config validation, the CLI, the netCDF layout, figures and report."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from typer.testing import CliRunner

import ntkit
from ntkit.cli import app
from ntkit.results import config_of, load
from ntkit.studies import FIGURES, WidthStudyConfig, agreement, load_config, run_width_study, summary_rows
from ntkit.studies.figures import figure_corrections, figure_depth_scan, figure_headline, figure_scale_invariance

TINY = """
activation = "gelu"
c_b = "critical"
c_w = "critical"
depth = 3
inputs = "pair"
widths = [4, 8]
networks = 400
seed = 7
scale_activations = ["relu", "gelu"]
scale_width = 6
scale_networks = 200
scan_depth = 6
scan_width = 6
scan_networks = 100
"""

runner = CliRunner()


def invoke(args: list):
    """``ntkit args`` in this process, without the persistent compilation cache (see tests/conftest.py)."""
    return runner.invoke(app, ["--no-compilation-cache", *args])


# one worker runs this file (make test runs the suite in processes): the study of tiny_study is computed once
pytestmark = pytest.mark.xdist_group("width_study")


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """Run ``ntkit width-study`` on the tiny config once; return (output dir, CLI result)."""
    root = tmp_path_factory.mktemp("study")
    config = root / "tiny.toml"
    config.write_text(TINY)
    out = root / "out"
    result = invoke(["width-study", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_cli_writes_data_figures_and_report(tiny_study):
    out, result = tiny_study
    ds = load(out / "study.nc")
    assert set(ds["width"].values) == {4, 8}
    assert ds["layer"].values.tolist() == [1, 2, 3]
    for name in ("K", "theta", "K1", "theta1"):
        assert ds[name].dims == ("layer", "a1", "a2")
        assert ds[f"{name}_mc"].dims == ("width", "layer", "a1", "a2")
        assert ds[f"{name}_mc_stderr"].dims == ("width", "layer", "a1", "a2")
    for name in ("V", "D", "F", "A", "B"):
        assert ds[name].dims == ("layer", "a1", "a2", "a3", "a4")
        assert ds[f"{name}_mc"].dims == ("width", "layer", "a1", "a2", "a3", "a4")
    assert ds["scale_theta1_diag_theory"].dims == ("scale_activation", "layer", "a1")
    assert ds["scan_v_theory"].dims == ("scan_case", "scan_layer")
    assert ds.attrs["seed"] == 7 and config_of(ds)["widths"] == [4, 8]
    for stem in FIGURES:
        assert (out / "figures" / f"{stem}.png").stat().st_size > 0
        assert (out / "figures" / f"{stem}.svg").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "Seed: 7" in report and "`widths` = `[4, 8]`" in report and "`activation` = `gelu`" in report
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES) and "Seed: 7" in html
    assert "wrote:" in result.output and "study.nc" in result.output


def test_study_stores_the_library_results(tiny_study):
    """A storage check (the values themselves are tested in test_first_order and test_sampling):
    every theory variable is finite_width's, every Monte-Carlo variable at width 8 is ntkit.sample's,
    with K1_mc, theta1_mc = n_(l-1) (MC mean - infinite width), n_0 at layer 1."""
    out, _ = tiny_study
    ds = load(out / "study.nc")
    cfg = load_config(None, **{k: v for k, v in config_of(ds).items() if k != "study"})
    theory = ntkit.finite_width(cfg.mlp(), cfg.input_array())
    for name in ("K", "theta", "K1", "theta1", "V", "D", "F", "A", "B"):
        np.testing.assert_allclose(ds[name].values, theory[name].values, rtol=1e-12, atol=1e-14, err_msg=name)
    mc = ntkit.sample(cfg.mlp(), cfg.input_array(), width=8, n_networks=cfg.networks, seed=cfg.seed)
    for name in ("K", "theta", "V", "D", "F", "A", "B"):
        for suffix in ("", "_stderr"):
            np.testing.assert_array_equal(ds[f"{name}_mc{suffix}"].sel(width=8).values, mc[f"{name}{suffix}"].values, err_msg=name + suffix)
    fan_in = np.array([cfg.input_array().shape[1], 8, 8])[:, None, None]
    for name in ("K", "theta"):
        np.testing.assert_allclose(ds[f"{name}1_mc"].sel(width=8).values, fan_in * (mc[name].values - theory[name].values),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


def test_agreement_z_scores_are_the_definition(tiny_study):
    out, _ = tiny_study
    ds = load(out / "study.nc")
    z = agreement(ds).sel(width=4)
    at = ds.sel(layer=3, width=4)
    expected = (at["theta_mc"] - at["theta"] - at["theta1"] / 4) / at["theta_mc_stderr"]
    np.testing.assert_allclose(z["z_theta_first_order"].values, expected.values)
    rows = summary_rows(ds)
    assert [r["width"] for r in rows] == [4, 8]
    assert rows[0]["z_theta_infinite"] == pytest.approx(float(((at["theta_mc"] - at["theta"]) / at["theta_mc_stderr"]).sel(a1=0, a2=1)))


def test_figures_carry_labels_and_data(tiny_study):
    out, _ = tiny_study
    ds = load(out / "study.nc")
    fig = figure_headline(ds)
    ax = fig.axes[1]
    assert "hidden width n" in ax.get_xlabel() and r"\Theta" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("sampled networks" in s for s in labels) and "infinite width" in labels and any("first order" in s for s in labels)
    points = ax.containers[0].lines[0].get_ydata()  # the errorbar's data points
    np.testing.assert_allclose(points, ds["theta_mc"].sel(layer=3, a1=0, a2=1).values)
    infinite_line = [line for line in ax.get_lines() if line.get_label() == "infinite width"][0]
    assert infinite_line.get_ydata()[0] == pytest.approx(float(ds["theta"].sel(layer=3, a1=0, a2=1)))
    plt.close(fig)

    fig = figure_corrections(ds)
    assert fig.axes[0].get_xscale() == "log" and "n (mean" in fig.axes[0].get_ylabel()
    plt.close(fig)
    fig = figure_scale_invariance(ds)
    assert [a.get_title() for a in fig.axes] == ["relu (critical)", "gelu (critical)"]
    theory_line = fig.axes[1].get_lines()[0]
    np.testing.assert_allclose(theory_line.get_ydata(), ds["scale_theta1_diag_theory"].sel(scale_activation="gelu", a1=0).values)
    plt.close(fig)
    fig = figure_depth_scan(ds)
    assert fig.axes[1].get_xscale() == "log" and fig.axes[1].get_yscale() == "log"
    assert any(t.get_text().startswith("v ∝ ℓ^") for t in fig.axes[1].get_legend().get_texts())
    plt.close(fig)


def test_show_and_plot_redraw_a_saved_study(tiny_study, tmp_path):
    out, _ = tiny_study
    shown = invoke(["show", str(out / "study.nc")])
    assert shown.exit_code == 0 and "z inf." in shown.output and "relu" in shown.output
    redrawn = invoke(["plot", str(out / "study.nc"), "--out", str(tmp_path)])
    assert redrawn.exit_code == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"{s}.png" for s in FIGURES)


def test_finished_study_leaves_no_checkpoints(tiny_study):
    out, _ = tiny_study
    assert (out / "study.nc").is_file() and not (out / "checkpoints").exists()


def test_interrupted_study_resumes_where_it_stopped(tiny_study, tmp_path):
    """Stopped when its width-8 sampling starts, the study keeps the width-4 checkpoint; the rerun
    takes that run as done (its first progress report is complete) and samples width 8 from the
    start, ends with the numbers of the uninterrupted study, and removes the checkpoints."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    cfg = load_config(config, output=str(tmp_path / "out"))

    def stop_at_width_8(step, done, total):
        if step.endswith("width 8"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_width_study(cfg, progress=stop_at_width_8)
    checkpoints = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*.nc")) == ["main_n4.nc"]

    first_report = {}
    ds, _ = run_width_study(cfg, progress=lambda step, done, total: first_report.setdefault(step, (done, total)))
    assert first_report["sampling gelu, depth 3, width 4"] == (400, 400)
    assert first_report["sampling gelu, depth 3, width 8"] == (0, 400)
    assert not checkpoints.exists()
    uninterrupted = load(tiny_study[0] / "study.nc")
    assert set(ds.data_vars) == set(uninterrupted.data_vars)
    for name in ds.data_vars:
        np.testing.assert_array_equal(ds[name].values, uninterrupted[name].values, err_msg=name)


@pytest.mark.parametrize(
    "text, message",
    [
        ("widht = [4]", "unknown config key(s) widht"),
        ("widths = [8, -2]", "widths must be a non-empty list of positive integers"),
        ('inputs = "missing.npy"', "neither a named set"),
        ("networks = 1", "networks must be an integer >= 2"),
        ('activation = "swish2"', "swish2"),
        ("entry = [0, 5]", "entry must be two input indices"),
        ("c_b = 0.1", 'c_b and c_w must both be "critical" or both numbers'),
        ("c_b = 0.0\nc_w = -1.0", "c_w must be > 0"),
        ("widths = [4.7, 8]", "widths must be a non-empty list of positive integers"),  # not silently width 4
        ("networks = 4.9", "networks must be an integer >= 2"),
        ("seed = -1", "seed must be an integer >= 0"),
        ("scan_off_factor = nan", "scan_off_factor must be positive"),
        ('scale_activations = "relu"', "scale_activations must be a list"),
        ("entry = [0.9, 1]", "entry must be two integer input indices"),
    ],
)
def test_bad_config_stops_before_any_work(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = invoke(["width-study", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_missing_config_file_is_named(tmp_path):
    result = invoke(["width-study", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2 and "no config file at" in result.output


def test_config_round_trips_through_the_dataset_json():
    cfg = WidthStudyConfig(widths=(8, 16), networks=10).validated()
    again = load_config(None, **json.loads(json.dumps(cfg.as_dict())))
    assert again == cfg
