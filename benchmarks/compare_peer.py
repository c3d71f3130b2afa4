"""ntkit's float64 infinite-width kernels against neural-tangents' ``stax`` kernels (``make peer``).

relu, erf and gelu (exact) at depths 2, 4, 8, generic (c_b, c_w) = (0.3, 1.3) and critical
hyperparameters, on 8 inputs in R^16: five Gaussian vectors, a duplicate, an antipode and the zero
vector. A stax ``Dense(W_std, b_std)`` network in NTK parameterisation is ntkit's MLP with
c_w = lambda_w = W_std^2 and c_b = lambda_b = b_std^2. The output layer's K and Theta must agree to
1e-8 in the relative error

    err = max_ab |ntkit_ab - nt_ab| / max(|nt_ab|, 1e-6 max_cd |nt_cd|)

(elementwise relative, with a floor so exact zeros, e.g. K(x, 0) at c_b = 0, are judged against
the matrix scale). neural-tangents' relu NTK is only accurate to ~1e-8 where the correlation is 1
(the diagonal and duplicate inputs: arccos(1 - eps) ~ sqrt(2 eps)); there both libraries are also
held against the exact values (S = K/2, <sigma' sigma'> = 1/2), and a relu case passes if ntkit
matches neural-tangents elsewhere and the exact values there. tanh, which neural-tangents integrates numerically (``ElementwiseNumerical``),
is reported for information. Writes ``docs/peer.md``; exits with 1 if a required case fails.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np

import ntkit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import PeerUnavailable, run_peer  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "peer.md"
TOLERANCE = 1e-8
GENERIC = (0.3, 1.3)
TANH_DEG = 400


def comparison_inputs(seed: int = 0) -> np.ndarray:
    """Five Gaussian inputs in R^16, a duplicate of the first, the antipode of the second, zero."""
    x = np.random.default_rng(seed).normal(size=(5, 16))
    return np.concatenate([x, x[:1], -x[1:2], np.zeros((1, 16))])


def cases() -> list[dict]:
    """The required cases: activation x depth x {generic, critical}."""
    out = []
    for act in ("relu", "erf", "gelu"):
        crit = ntkit.critical(act)
        for label, (c_b, c_w) in (("generic", GENERIC), ("critical", (crit.c_b, crit.c_w))):
            for depth in (2, 4, 8):
                out.append({"name": f"{act}-{label}-L{depth}", "activation": act, "depth": depth, "c_b": float(c_b), "c_w": float(c_w), "x": "x"})
    return out


def tanh_cases() -> list[dict]:
    """tanh (generic, critical) at depth 4 against ElementwiseNumerical with TANH_DEG nodes."""
    crit = ntkit.critical("tanh")
    return [
        {"name": f"tanh-{label}-L4", "activation": "tanh", "depth": 4, "c_b": float(c_b), "c_w": float(c_w), "deg": TANH_DEG, "x": "x"}
        for label, (c_b, c_w) in (("generic", GENERIC), ("critical", (crit.c_b, crit.c_w)))
    ]


def ntkit_kernels(case: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ntkit's output-layer K and Theta for a case (lambda = c, as in NTK parameterisation)."""
    mlp = ntkit.MLP(depth=case["depth"], activation=case["activation"], c_b=case["c_b"], c_w=case["c_w"], lambda_b=case["c_b"], lambda_w=case["c_w"])
    ds = ntkit.infinite_width(mlp, x, layers="last")
    return ds["K"].values[0], ds["theta"].values[0]


def relative_error(ours: np.ndarray, ref: np.ndarray, where: np.ndarray | None = None) -> float:
    """max_ab |ours - ref| / max(|ref_ab|, 1e-6 max|ref|) over the entries ``where`` (default all);
    NaN if either holds a NaN."""
    if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(ref))):
        return float("nan")
    floor = 1e-6 * np.max(np.abs(ref))
    err = np.abs(ours - ref) / np.maximum(np.abs(ref), floor)
    return float(np.max(err if where is None else err[where], initial=0.0))


def duplicates(x: np.ndarray) -> np.ndarray:
    """(m, m) mask of the pairs of identical inputs, the diagonal included."""
    return np.all(x[:, None, :] == x[None, :, :], axis=-1)


def relu_duplicate_kernels(case: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact relu K_aa and Theta_aa: at correlation 1, <relu relu> = K/2 and <relu' relu'> = 1/2."""
    k = case["c_b"] + case["c_w"] * np.sum(x * x, axis=1) / x.shape[1]
    t = k.copy()
    for _ in range(2, case["depth"] + 1):
        t = case["c_b"] + case["c_w"] * k / 2 + case["c_w"] * t / 2
        k = case["c_b"] + case["c_w"] * k / 2
    return k, t


def _exact_error(K: np.ndarray, theta: np.ndarray, k: np.ndarray, t: np.ndarray, dup: np.ndarray) -> float:
    """Largest relative error of K, theta on duplicate pairs (a, b) against the exact k_a, t_a."""
    a, b = np.nonzero(dup)
    return float(np.max([relative_error(K[a, b], k[a]), relative_error(theta[a, b], t[a])]))


def passed(row: dict) -> bool:
    """Within TOLERANCE everywhere, or (relu) elsewhere and on the duplicate pairs against exact values."""
    if _within(row["err_K"], row["err_theta"]):
        return True
    return "exact_ntkit" in row and _within(row["err_K_off"], row["err_theta_off"], row["exact_ntkit"])


def _within(*errors: float) -> bool:
    """All errors at most TOLERANCE (False for NaN)."""
    return all(e <= TOLERANCE for e in errors)


def compare(case_list: list[dict], x: np.ndarray) -> tuple[list[dict], dict]:
    """Run neural-tangents on all cases in one peer process and compare with ntkit."""
    peer = run_peer("nt_kernels", {"cases": case_list}, {"x": x})
    rows = []
    for case in case_list:
        K, theta = ntkit_kernels(case, x)
        nngp, ntk = peer[f"{case['name']}/nngp"], peer[f"{case['name']}/ntk"]
        nonzero = np.arange(x.shape[0] - 1)  # every input but the zero vector
        dup = duplicates(x)
        row = {
            **case,
            "err_K": relative_error(K, nngp),
            "err_theta": relative_error(theta, ntk),
            "err_K_nonzero": relative_error(K[np.ix_(nonzero, nonzero)], nngp[np.ix_(nonzero, nonzero)]),
            "err_theta_nonzero": relative_error(theta[np.ix_(nonzero, nonzero)], ntk[np.ix_(nonzero, nonzero)]),
            "nt_nan": int(np.isnan(nngp).sum() + np.isnan(ntk).sum()),
            "ntkit_nan": int(np.isnan(K).sum() + np.isnan(theta).sum()),
            "err_K_off": relative_error(K, nngp, ~dup),
            "err_theta_off": relative_error(theta, ntk, ~dup),
        }
        if case["activation"] == "relu":
            k, t = relu_duplicate_kernels(case, x)
            row["exact_ntkit"] = _exact_error(K, theta, k, t, dup)
            row["exact_nt"] = _exact_error(nngp, ntk, k, t, dup)
        rows.append(row)
    return rows, peer["versions"]


def _fmt(v: float) -> str:
    return "NaN" if np.isnan(v) else f"{v:.1e}"


def _status(row: dict) -> str:
    if _within(row["err_K"], row["err_theta"]):
        return "pass"
    return "pass (nt off at correlation 1)" if passed(row) else "**FAIL**"


def report(rows: list[dict], tanh_rows: list[dict], versions: dict) -> str:
    failed = [r for r in rows if not passed(r)]
    lines = [
        "# ntkit against neural-tangents",
        "",
        f"Run by `make peer` on {datetime.date.today().isoformat()}: ntkit {ntkit.__version__} (float64) against "
        f"neural-tangents {versions['neural_tangents']} (jax {versions['jax']}, x64 on, numpy {versions['numpy']}) "
        "in the peer venv `.peer/`.",
        "",
        "Set-up: neural-tangents 0.6.5 needs jax 0.4.25 and numpy < 2, so it lives in its own venv, built once "
        "by `make peer` with Python 3.11 from `benchmarks/peer/requirements.txt` (jax/jaxlib 0.4.25, numpy 1.26.4, "
        "tensorflow-cpu 2.15.1, ml-dtypes 0.3.2) and then `requirements-nodeps.txt` (neural-tangents 0.6.5, "
        "tf2jax 0.3.6) with `--no-deps`: both declare `tensorflow`, whose modules tensorflow-cpu provides "
        "(`pip check` reports that name only). The scripts in `benchmarks/peer/` run there in subprocesses "
        "(`benchmarks/_peer.py`).",
        "",
        "Network: `stax.serial(Dense, act, ..., Dense)` with `depth` Dense layers in NTK parameterisation, "
        "`W_std = sqrt(c_w)`, `b_std = sqrt(c_b)`; ntkit `MLP(depth, act, c_b, c_w, lambda_b=c_b, lambda_w=c_w)`. "
        "Compared: the output layer's NNGP kernel K and NTK Theta. Inputs (8 in R^16, seed 0): five Gaussian "
        "vectors, a duplicate of the first, the antipode of the second, and the zero vector. Generic "
        f"(c_b, c_w) = {GENERIC}; critical from `ntkit.critical`. neural-tangents' gelu is `Gelu(approximate=False)` "
        "(exact, z Phi(z)), its erf `Erf()` (erf z).",
        "",
        "Relative error: max_ab |ntkit_ab - nt_ab| / max(|nt_ab|, 1e-6 max|nt|). Required: <= 1e-8.",
        "",
        f"**Result: {len(rows) - len(failed)} of {len(rows)} cases pass.**" + (f" Failed: {', '.join(r['name'] for r in failed)}." if failed else ""),
        "",
        "Columns: the error over all entries; over all pairs but those of identical inputs (the diagonal "
        "and the duplicate); and, for relu, on the identical pairs against the exact values, for ntkit and "
        "for neural-tangents.",
        "",
        "| case | c_b | c_w | err K | err Theta | err K, Theta (non-identical pairs) | identical pairs vs exact: ntkit / nt | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        exact = f"{_fmt(r['exact_ntkit'])} / {_fmt(r['exact_nt'])}" if "exact_ntkit" in r else "-"
        lines.append(
            f"| {r['name']} | {r['c_b']:.6g} | {r['c_w']:.6g} | {_fmt(r['err_K'])} | {_fmt(r['err_theta'])} "
            f"| {_fmt(r['err_K_off'])}, {_fmt(r['err_theta_off'])} | {exact} | {_status(r)} |"
        )
    lines += [
        "",
        f"## tanh (information): neural-tangents `ElementwiseNumerical(tanh, deg={TANH_DEG})`",
        "",
        "neural-tangents has no closed form for tanh; its numerical layer integrates with a deg x deg "
        "Gauss-Hermite product rule and divides by the input variances, so rows of a zero-variance input "
        "come out NaN. Errors are given on all 8 inputs and on the 7 nonzero inputs.",
        "",
        "| case | c_b | c_w | NaN entries (nt / ntkit) | err K (all) | err Theta (all) | err K (nonzero inputs) | err Theta (nonzero inputs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['c_b']:.6g} | {r['c_w']:.6g} | {r['nt_nan']} / {r['ntkit_nan']} | {_fmt(r['err_K'])} | {_fmt(r['err_theta'])} "
        f"| {_fmt(r['err_K_nonzero'])} | {_fmt(r['err_theta_nonzero'])} |"
        for r in tanh_rows
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    x = comparison_inputs()
    try:
        rows, versions = compare(cases(), x)
        tanh_rows, _ = compare(tanh_cases(), x)
    except PeerUnavailable as exc:
        print(f"peer comparison unavailable: {exc}", file=sys.stderr)
        return 2
    text = report(rows, tanh_rows, versions)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)
    failed = [r["name"] for r in rows if not passed(r)]
    if failed:
        print(f"FAILED (relative error above {TOLERANCE:g} or NaN): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
