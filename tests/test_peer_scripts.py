"""The neural-tangents comparison plumbing (benchmarks/): error measure, reference values, runner.

The peer venv itself is only exercised by the slow test (skipped when ``.peer/`` is missing).
"""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import ntkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _peer  # noqa: E402
import compare_peer  # noqa: E402


def test_relative_error_is_elementwise_with_a_floor_at_one_millionth_of_the_scale():
    ref = np.array([[2.0, 1e-9], [0.0, -4.0]])
    ours = ref + np.array([[2e-8, 0.0], [4e-14, 0.0]])
    # entry (0,0): 1e-8 relative; entry (1,0): 4e-14 against the floor 4e-6 -> 1e-8
    assert compare_peer.relative_error(ours, ref) == pytest.approx(1e-8, rel=1e-6)
    assert compare_peer.relative_error(ours, ref, where=np.array([[False, True], [True, True]])) == pytest.approx(1e-8, rel=1e-6)
    assert compare_peer.relative_error(ours, ref, where=np.array([[False, True], [False, True]])) == 0.0
    assert math.isnan(compare_peer.relative_error(np.full((2, 2), np.nan), ref))


def test_comparison_inputs_hold_a_duplicate_an_antipode_and_zero():
    x = compare_peer.comparison_inputs()
    assert x.shape == (8, 16)
    np.testing.assert_array_equal(x[5], x[0])
    np.testing.assert_array_equal(x[6], -x[1])
    np.testing.assert_array_equal(x[7], 0.0)
    dup = compare_peer.duplicates(x)
    expected = np.eye(8, dtype=bool)
    expected[0, 5] = expected[5, 0] = True
    np.testing.assert_array_equal(dup, expected)


def test_cases_cover_three_activations_three_depths_two_hyperparameter_sets():
    cases = compare_peer.cases()
    assert len(cases) == 18
    assert {(c["activation"], c["depth"]) for c in cases} == {(a, d) for a in ("relu", "erf", "gelu") for d in (2, 4, 8)}
    relu_critical = [c for c in cases if c["name"].startswith("relu-critical")]
    assert all((c["c_b"], c["c_w"]) == (0.0, 2.0) for c in relu_critical)


@pytest.mark.parametrize("c_b, c_w, depth", [(0.3, 1.3, 4), (0.0, 2.0, 8)])
def test_exact_relu_duplicate_kernels_match_the_arc_cosine_recursion_at_correlation_one(c_b, c_w, depth):
    """Hand recursion K <- c_b + c_w K/2, Theta <- c_b + c_w K/2 + c_w Theta/2 against ntkit's diagonal."""
    x = compare_peer.comparison_inputs()
    case = {"c_b": c_b, "c_w": c_w, "depth": depth, "activation": "relu"}
    k, t = compare_peer.relu_duplicate_kernels(case, x)
    K, theta = compare_peer.ntkit_kernels(case, x)
    np.testing.assert_allclose(np.diag(K), k, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(np.diag(theta), t, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(K[0, 5], k[0], rtol=1e-13)


def test_passed_accepts_relu_only_when_ntkit_matches_exact_values_on_identical_pairs():
    row = {"err_K": 1e-15, "err_theta": 2e-8, "err_K_off": 1e-15, "err_theta_off": 1e-15, "exact_ntkit": 1e-16, "exact_nt": 2e-8}
    assert compare_peer.passed(row)
    assert not compare_peer.passed({**row, "exact_ntkit": 2e-8})
    assert not compare_peer.passed({**row, "err_theta_off": 2e-8})
    no_exact = {k: v for k, v in row.items() if not k.startswith("exact")}
    assert not compare_peer.passed(no_exact)
    assert not compare_peer.passed({**no_exact, "err_theta": float("nan")})


def test_run_peer_reports_a_missing_venv_cleanly(monkeypatch, tmp_path):
    monkeypatch.setattr(_peer, "PEER_PYTHON", tmp_path / "missing" / "python")
    assert not _peer.available()
    with pytest.raises(_peer.PeerUnavailable, match="make peer"):
        _peer.run_peer("nt_kernels", {"cases": []})
    with pytest.raises(ValueError, match="no peer script"):
        _peer.run_peer("no_such_script", {})


@pytest.mark.slow
@pytest.mark.skipif(not _peer.available(), reason="peer venv .peer/ not built (make peer)")
def test_neural_tangents_relu_depth_two_matches_the_arc_cosine_formula():
    """neural-tangents through the peer runner against the arc-cosine kernel written out by hand."""
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])
    c_w, c_b = 1.5, 0.2
    case = {"name": "c", "activation": "relu", "depth": 2, "c_w": c_w, "c_b": c_b, "x": "x"}
    result = _peer.run_peer("nt_kernels", {"cases": [case]}, {"x": x})
    K1 = c_b + c_w * x @ x.T / 2
    d = np.sqrt(np.diag(K1))
    angle = np.arccos(np.clip(K1 / np.outer(d, d), -1, 1))
    S = np.outer(d, d) * (np.sin(angle) + (np.pi - angle) * np.cos(angle)) / (2 * np.pi)
    np.testing.assert_allclose(result["c/nngp"], c_b + c_w * S, rtol=1e-12)
    np.testing.assert_allclose(result["c/ntk"], c_b + c_w * S + c_w * (np.pi - angle) / (2 * np.pi) * K1, rtol=1e-12)
    assert result["versions"]["neural_tangents"] == "0.6.5"
    mlp = ntkit.MLP(depth=2, activation="relu", c_b=c_b, c_w=c_w, lambda_b=c_b, lambda_w=c_w)
    np.testing.assert_allclose(ntkit.infinite_width(mlp, x, layers="last")["theta"].values[0], result["c/ntk"], rtol=1e-12)
