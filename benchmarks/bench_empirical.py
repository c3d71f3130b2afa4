"""Benchmark: empirical NTK of an MLP against neural-tangents, and kernel dynamics at 4096 points.

Empirical NTK: depth 4 (four Dense layers), relu, c_w = 2, c_b = 0, NTK parameterization, one
output, 256 Gaussian inputs in R^16, float64; ntkit ``empirical_ntk`` (each method; ``max_memory``
4 GiB) and neural-tangents' jitted ``empirical_ntk_fn(trace_axes=(), vmap_axes=0)`` per
implementation in the peer venv (``benchmarks/_peer.py``), widths 512 and 2048. At width 2048
(P = 12.6 M parameters) the float64 Jacobian of 256 inputs alone is 26 GB, more than the
machine's 24 GB: neural-tangents' JACOBIAN_CONTRACTION and NTK_VECTOR_PRODUCTS (which hold it,
or the equivalent tangents, at once) are skipped there; ntkit's Jacobian contraction runs in
memory-bounded blocks; ntkit's NTVP (m^2 [FP] flops, ~5e12) is skipped as well.

Dynamics: the infinite-width NTK of the same MLP on 4096 training + 256 test inputs;
kernel_regression (ridge 1e-6, Cholesky; ridgeless, eigendecomposition), gradient_flow and
gradient_descent at 10 times each. Times are wall-clock seconds after a warm-up call on the same
shapes (JIT compilation excluded), best of REPEATS. Writes ``docs/benchmarks/empirical.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import ntkit
from ntkit import dynamics
from ntkit.training import Network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import PeerUnavailable, available, run_peer  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "empirical.md"
DEPTH, DIM, M = 4, 16, 256
REPEATS = 2
MEMORY = 4 * 2**30
NT_IMPLEMENTATIONS = {512: ["JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "STRUCTURED_DERIVATIVES", "AUTO"],
                      2048: ["STRUCTURED_DERIVATIVES"]}
NTKIT_METHODS = {512: ["jacobian", "ntvp", "structured", "auto"], 2048: ["structured", "auto"]}


def _best(fn, repeats=REPEATS):
    fn()  # warm-up: compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def empirical_rows(widths):
    mlp = ntkit.MLP(depth=DEPTH, activation="relu", c_b=0.0, c_w=2.0, lambda_b=0.0, lambda_w=2.0)
    x = np.random.default_rng(0).normal(size=(M, DIM))
    rows, notes = [], []
    for width in widths:
        net = Network(mlp, n_in=DIM, width=width)
        params = net.init(jax.random.PRNGKey(0))
        ref = None
        first = NTKIT_METHODS[width][0]
        for method in NTKIT_METHODS[width]:
            result = {}
            t = _best(lambda: result.setdefault("k", ntkit.empirical_ntk(net.apply, params, x, method=method, max_memory=MEMORY)),
                      repeats=REPEATS if width <= 512 else 1)
            ref = result["k"] if ref is None else ref
            dev = float(np.max(np.abs(result["k"] - ref)) / np.max(np.abs(ref)))
            rows.append((width, f"ntkit {method}", t, f"{dev:.1e} vs ntkit {first}"))
        if not available():
            notes.append(f"width {width}: neural-tangents peer not available (run `make peer`)")
            continue
        try:
            res = run_peer("nt_empirical", {"activation": "relu", "depth": DEPTH, "c_w": 2.0, "c_b": 0.0, "width": width,
                                            "seed": 0, "repeats": REPEATS if width <= 512 else 1,
                                            "implementations": NT_IMPLEMENTATIONS[width]}, {"x": x})
        except (PeerUnavailable, RuntimeError) as exc:
            notes.append(f"width {width}: neural-tangents run failed: {str(exc).splitlines()[0]}")
            continue
        for impl, summary in res["implementations"].items():
            rows.append((width, f"neural-tangents {impl}", summary["time_s"], f"peak +{summary['peak_rss_mib']:.0f} MiB"))
    return rows, notes


def dynamics_rows(m_train=4096, m_test=256):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(m_train + m_test, DIM))
    mlp = ntkit.MLP(depth=DEPTH, activation="relu", c_b=0.0, c_w=2.0, lambda_b=0.0, lambda_w=2.0)
    theta = ntkit.infinite_width(mlp, x, layers="last")["theta"].values[0]
    th, ts = theta[:m_train, :m_train], theta[m_train:, :m_train]
    y = np.sin(x[:m_train, 0])
    lam_max = dynamics.check_learning_rate(th, 1e-12)
    lr = 1.0 / lam_max
    times = np.geomspace(1, 1e4, 10)
    cases = {
        "kernel_regression ridge 1e-6 (Cholesky)": lambda: dynamics.kernel_regression(th, y, ts, ridge=1e-6),
        "kernel_regression ridgeless (eigh)": lambda: dynamics.kernel_regression(th, y, ts),
        "gradient_flow, 10 times, train + test": lambda: dynamics.gradient_flow(th, y, times, lr=lr, theta_test_train=ts),
        "gradient_descent, 10 step counts, train + test": lambda: dynamics.gradient_descent(th, y, np.round(times), lr=lr, theta_test_train=ts),
    }
    return [(name, _best(fn, repeats=1)) for name, fn in cases.items()]


def main(widths=(512, 2048)) -> str:
    emp, notes = empirical_rows(widths)
    dyn = dynamics_rows()
    load = os.getloadavg()[0]
    lines = ["## Empirical NTK and kernel dynamics", "",
             f"Empirical NTK of a depth-{DEPTH} relu MLP (NTK parameterization, one output) on {M} inputs in R^{DIM}, float64. "
             "Target: ntkit at most 1.2x the best neural-tangents implementation.", "",
             "| width | implementation | time (s) | note |", "|---|---|---|---|"]
    lines += [f"| {w} | {name} | {t:.2f} | {note} |" for w, name, t, note in emp]
    for width in widths:
        ours = [t for w, n, t, _ in emp if w == width and n.startswith("ntkit")]
        theirs = [t for w, n, t, _ in emp if w == width and n.startswith("neural-tangents")]
        if ours and theirs:
            lines.append(f"\nwidth {width}: best ntkit / best neural-tangents = {min(ours) / min(theirs):.2f}x")
    lines += [f"\n{note}" for note in notes]
    lines += ["", "Kernel dynamics with the infinite-width NTK on 4096 training and 256 test inputs:", "",
              "| case | time (s) |", "|---|---|"]
    lines += [f"| {name} | {t:.2f} |" for name, t in dyn]
    lines += ["", f"Machine load average when finished: {load:.1f} on 2 cores (other jobs were running; times are upper bounds)."]
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


if __name__ == "__main__":
    print(main(tuple(int(w) for w in sys.argv[1:]) or (512, 2048)))
