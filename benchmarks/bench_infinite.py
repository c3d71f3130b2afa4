"""Benchmark: infinite-width NNGP + NTK Gram matrices, ntkit against neural-tangents.

Depth 4 (four Dense layers), critical hyperparameters, N Gaussian inputs in R^16 (seeded by N):

- relu, erf, gelu at N in {256, 1024, 4096}: ntkit ``infinite_width(mlp, x, layers="last")``
  and neural-tangents' jitted ``kernel_fn(x, None, ("nngp", "ntk"))`` on the same inputs;
- tanh at N = 1024: ntkit (the last input replaced by the zero vector, which ntkit must handle)
  against ``stax.ElementwiseNumerical(tanh, deg)`` at the smallest deg of DEGS reaching 1e-10
  relative to ntkit on 8 inputs. ElementwiseNumerical materialises deg^2 N^2 values per layer
  (5 PB at deg = 800, N = 1024), so it is timed at N = 8 and 16 and its N = 1024 time and memory
  extrapolated by its N^2 cost.

Every case runs in a fresh subprocess, ROUNDS times per library, alternating between them; times
are the best over the rounds of repeats(N) calls made after a warm-up call on the same inputs
(JIT compilation excluded); peak memory is the rise of the process's
peak resident set (VmHWM) over its value after imports (XLA buffers, compilation and outputs included).
Accuracy: max_ab |ntkit - nt| / max(|nt_ab|, 1e-6 max|nt|) over K and Theta.
Writes ``docs/benchmarks/infinite.md``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import PeerUnavailable, available, run_peer  # noqa: E402
from compare_peer import relative_error  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "infinite.md"
DEPTH, DIM = 4, 16
SIZES = (256, 1024, 4096)
REPEATS = 2
ROUNDS = 2  # fresh processes per library and case, alternating; the best time counts

TANH_N, TANH_SMALL = 1024, (8, 16)
DEGS = (100, 150, 200, 250, 300, 400, 600, 800)
TARGET_RATIO = {"relu": 1.0, "erf": 1.0, "gelu": 1 / 3, "tanh": 1 / 100}
MEMORY_TARGET_MIB = 1024.0


def repeats(n: int) -> int:
    """Timed calls per closed-form case of N inputs: more for the millisecond cases, whose single
    times on a shared machine scatter by a factor of two (the same count for both libraries)."""
    return max(REPEATS, 2**24 // (n * n))


def inputs(n: int, zero_last: bool = False) -> np.ndarray:
    """n standard Gaussian inputs in R^16 (seed n); optionally the last one set to zero."""
    x = np.random.default_rng(n).normal(size=(n, DIM))
    if zero_last:
        x[-1] = 0.0
    return x


def hyperparameters(act: str) -> tuple[float, float]:
    import ntkit

    crit = ntkit.critical(act)
    return float(crit.c_b), float(crit.c_w)


def peak_rss_mib() -> float:
    """Peak resident set size of this process image (VmHWM; ru_maxrss would include the parent's
    peak, which Linux carries over fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ntkit_case(spec: dict, out: str) -> dict:
    """Body of the ntkit subprocess: time infinite_width on the case's inputs, save K and theta."""
    import jax.numpy as jnp

    import ntkit

    x = inputs(spec["n"], spec.get("zero_last", False))
    c_b, c_w = spec["c_b"], spec["c_w"]
    mlp = ntkit.MLP(depth=DEPTH, activation=spec["activation"], c_b=c_b, c_w=c_w, lambda_b=c_b, lambda_w=c_w)
    jnp.zeros(1).block_until_ready()
    baseline = peak_rss_mib()
    start = time.perf_counter()
    ds = ntkit.infinite_width(mlp, x, layers="last")
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        ds = ntkit.infinite_width(mlp, x, layers="last")
        best = min(best, time.perf_counter() - start)
    peak = peak_rss_mib() - baseline
    np.savez(out, K=ds["K"].values[0], theta=ds["theta"].values[0])
    return {"time_s": best, "compile_s": compile_s, "peak_rss_mib": peak}


def run_ntkit(spec: dict) -> dict:
    """Run one ntkit case in a fresh subprocess; the result dict holds K and theta."""
    with tempfile.TemporaryDirectory(prefix="ntkit-bench-") as tmp:
        out = str(Path(tmp) / "kernels.npz")
        proc = subprocess.run([sys.executable, __file__, "--ntkit-case", json.dumps(spec), out], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ntkit case {spec} failed:\n{proc.stderr[-4000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        with np.load(out) as data:
            result["K"], result["theta"] = data["K"], data["theta"]
    return result


def run_nt(act: str, n: int, c_b: float, c_w: float, x: np.ndarray, deg: int | None = None, calls: int = REPEATS) -> dict:
    """neural-tangents on one case in a fresh peer subprocess, the best of ``calls`` timed calls."""
    case = {"name": "case", "activation": act, "depth": DEPTH, "c_b": c_b, "c_w": c_w, "x": "x", "deg": deg}
    result = run_peer("nt_kernels", {"cases": [case], "repeats": calls}, {"x": x})
    return {**result["cases"][0], "peak_rss_mib": result["peak_rss_mib"], "nngp": result["case/nngp"], "ntk": result["case/ntk"], "versions": result["versions"]}


def _error(ours_K, ours_theta, nngp, ntk) -> float:
    """Elementwise relative difference (floor 1e-6 max|nt|) over K and Theta; NaN propagates."""
    return float(np.max([relative_error(ours_K, nngp), relative_error(ours_theta, ntk)]))


def _normwise(ours_K, ours_theta, nngp, ntk) -> float:
    """max |ntkit - nt| / max |nt| over K and Theta."""
    return float(np.max([np.max(np.abs(ours_K - nngp)) / np.max(np.abs(nngp)), np.max(np.abs(ours_theta - ntk)) / np.max(np.abs(ntk))]))


def closed_form_rows() -> list[dict]:
    rows = []
    for act in ("relu", "erf", "gelu"):
        c_b, c_w = hyperparameters(act)
        for n in SIZES:
            our_rounds, their_rounds = [], []
            for _ in range(ROUNDS):  # alternating, so that a slow spell of the host hits both libraries
                our_rounds.append(run_ntkit({"activation": act, "n": n, "c_b": c_b, "c_w": c_w, "repeats": repeats(n)}))
                their_rounds.append(run_nt(act, n, c_b, c_w, inputs(n), calls=repeats(n)))
            best_ours, best_theirs = (min(r["time_s"] for r in runs) for runs in (our_rounds, their_rounds))
            ours, theirs = our_rounds[0], their_rounds[0]  # kernels and peak memory: from the first round
            rows.append(
                {
                    "activation": act,
                    "n": n,
                    "ntkit_s": best_ours,
                    "nt_s": best_theirs,
                    "ntkit_mib": ours["peak_rss_mib"],
                    "nt_mib": theirs["peak_rss_mib"],
                    "error": _error(ours["K"], ours["theta"], theirs["nngp"], theirs["ntk"]),
                    "normwise": _normwise(ours["K"], ours["theta"], theirs["nngp"], theirs["ntk"]),
                    "versions": theirs["versions"],
                }
            )
    return rows


def tanh_row() -> dict:
    """ntkit tanh at N = 1024 against ElementwiseNumerical at the deg reaching 1e-10."""
    c_b, c_w = hyperparameters("tanh")
    ours = run_ntkit({"activation": "tanh", "n": TANH_N, "c_b": c_b, "c_w": c_w, "repeats": REPEATS, "zero_last": True})
    x = inputs(TANH_N, zero_last=True)
    small = {m: x[:m] for m in TANH_SMALL}
    m0 = TANH_SMALL[0]
    scan_cases = [{"name": f"deg{d}", "activation": "tanh", "depth": DEPTH, "c_b": c_b, "c_w": c_w, "deg": d, "x": "x"} for d in DEGS]
    scan = run_peer("nt_kernels", {"cases": scan_cases}, {"x": small[m0]})
    errors = {d: _error(ours["K"][:m0, :m0], ours["theta"][:m0, :m0], scan[f"deg{d}/nngp"], scan[f"deg{d}/ntk"]) for d in DEGS}
    deg = next((d for d in DEGS if errors[d] <= 1e-10), DEGS[-1])
    timed = {m: run_nt("tanh", m, c_b, c_w, small[m], deg=deg) for m in TANH_SMALL}
    m1 = TANH_SMALL[-1]
    scale = (TANH_N / m1) ** 2
    zero = run_nt("tanh", 2, c_b, c_w, np.stack([x[0], x[-1]]), deg=deg)
    return {
        "c_b": c_b,
        "c_w": c_w,
        "deg": deg,
        "deg_errors": errors,
        "ntkit_s": ours["time_s"],
        "ntkit_mib": ours["peak_rss_mib"],
        "ntkit_finite": bool(np.all(np.isfinite(ours["K"])) and np.all(np.isfinite(ours["theta"]))),
        "nt_small": {m: (t["time_s"], t["peak_rss_mib"], _error(ours["K"][:m, :m], ours["theta"][:m, :m], t["nngp"], t["ntk"])) for m, t in timed.items()},
        "nt_s_extrapolated": timed[m1]["time_s"] * scale,
        "nt_gib_unbatched": deg**2 * TANH_N**2 * 8 / 2**30,
        "nt_zero_nan": int(np.isnan(zero["nngp"]).sum() + np.isnan(zero["ntk"]).sum()),
    }


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report(rows: list[dict], tanh: dict | None) -> str:
    v = rows[0]["versions"]
    lines = [
        "## Infinite-width NNGP + NTK Gram matrices against neural-tangents (depth 4, inputs in R^16)",
        "",
        f"neural-tangents {v['neural_tangents']} (jax {v['jax']}, x64) in `.peer/`, ntkit in `.venv/`, same inputs, "
        f"same run; critical hyperparameters; each case in a fresh process, {ROUNDS} rounds alternating between the libraries; "
        f"times are the best over the rounds of {', '.join(f'{repeats(n)} (N = {n})' for n in SIZES)} calls after a warm-up call on the same inputs "
        "(compilation excluded); peak memory is the rise "
        "of the peak resident set (VmHWM) over the process's value after imports. Difference: max over K and Theta of |ntkit - nt| "
        "elementwise relative (floor 1e-6 max|nt|) and normwise (over max|nt|); the relu entries near 1e-8 are "
        "neural-tangents' diagonal (arccos at correlation 1, see docs/peer.md), the erf ones roundoff on entries "
        "near the floor. Targets: ntkit/nt time <= 1.0 (relu, erf), <= 1/3 (gelu), <= 1/100 (tanh); "
        f"N = 4096 under {MEMORY_TARGET_MIB:.0f} MiB.",
        "",
        "| activation | N | ntkit (ms) | neural-tangents (ms) | ntkit / nt | ntkit peak (MiB) | nt peak (MiB) | difference: elementwise / normwise | time target met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["ntkit_s"] / r["nt_s"]
        lines.append(
            f"| {r['activation']} | {r['n']} | {1e3 * r['ntkit_s']:.4g} | {1e3 * r['nt_s']:.4g} | {ratio:.2f} | {r['ntkit_mib']:.0f} | {r['nt_mib']:.0f} "
            f"| {r['error']:.1e} / {r['normwise']:.1e} | {_met(ratio <= TARGET_RATIO[r['activation']])} |"
        )
    big = [r for r in rows if r["n"] == max(SIZES)]
    lines += ["", "Memory at N = 4096: " + ", ".join(f"{r['activation']} {r['ntkit_mib']:.0f} MiB ({_met(r['ntkit_mib'] < MEMORY_TARGET_MIB)})" for r in big) + "."]
    if tanh is not None:
        ratio = tanh["ntkit_s"] / tanh["nt_s_extrapolated"]
        small = "; ".join(f"N = {m}: {t:.2f} s, {mib:.0f} MiB, difference {err:.1e}" for m, (t, mib, err) in tanh["nt_small"].items())
        lines += [
            "",
            f"### tanh at N = {TANH_N} (critical c_b = {tanh['c_b']:.3g}, c_w = {tanh['c_w']:.6g}; the last input is the zero vector)",
            "",
            "ElementwiseNumerical node count: smallest deg with relative difference <= 1e-10 to ntkit on the first "
            f"{TANH_SMALL[0]} inputs: deg = {tanh['deg']} ("
            + ", ".join(f"{d}: {e:.1e}" for d, e in tanh["deg_errors"].items())
            + ").",
            "",
            f"- ntkit: {tanh['ntkit_s']:.2f} s, {tanh['ntkit_mib']:.0f} MiB, all entries finite: {tanh['ntkit_finite']}.",
            f"- neural-tangents, measured: {small}.",
            f"- neural-tangents at N = {TANH_N}, extrapolated by N^2 from N = {TANH_SMALL[-1]}: {tanh['nt_s_extrapolated']:.0f} s "
            f"(unbatched it would need {tanh['nt_gib_unbatched']:.0f} GiB per deg x deg x N x N temporary).",
            f"- ntkit / nt time: {ratio:.1e} (target <= 1e-2: {_met(ratio <= TARGET_RATIO['tanh'])}).",
            f"- neural-tangents on (x, 0): {tanh['nt_zero_nan']} of 8 NNGP/NTK entries NaN (zero variance).",
        ]
    return "\n".join(lines) + "\n"


def main() -> str:
    if not available():
        text = "## Infinite-width Gram matrices against neural-tangents\n\nSkipped: the peer venv `.peer/` is missing (run `make peer`).\n"
    else:
        try:
            text = report(closed_form_rows(), tanh_row())
        except PeerUnavailable as exc:
            text = f"## Infinite-width Gram matrices against neural-tangents\n\nSkipped: {exc}\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--ntkit-case":
        print(json.dumps(_ntkit_case(json.loads(sys.argv[2]), sys.argv[3])))
    else:
        print(main())
