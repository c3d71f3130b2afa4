"""Benchmark: first-order statistics against the infinite-width kernels on the same inputs.

theta1 Gram (tensors="mean") at depth 8 for inputs in R^16: gelu (critical) for m in {100, 1000},
relu (0, 2) for m in {100, 300} (its two-sample tables still use the polar quadrature rule pair by
pair); the full four-sample tensors for m = 8. Each case is timed after a warm-up call on a small
input set (most JIT compilation excluded), as wall and process (CPU, both cores) time, and
reported with the ratio to ``infinite_width`` on the same inputs. Writes
``docs/benchmarks/first_order.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

import ntkit

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "first_order.md"


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - start, time.process_time() - cpu


def _configurations():
    gelu = ntkit.critical("gelu")
    return {"gelu": ntkit.MLP(depth=8, activation="gelu", c_b=gelu.c_b, c_w=gelu.c_w), "relu": ntkit.MLP(depth=8, activation="relu", c_b=0.0, c_w=2.0)}


SIZES = {"gelu": (100, 1000), "relu": (100, 300)}


def main(sizes=None, full_size: int = 8) -> str:
    rng = np.random.default_rng(0)
    rows = []
    for name, mlp in _configurations().items():
        ntkit.finite_width(mlp, rng.normal(size=(4, 16)), tensors="mean")  # warm-up: compile
        ntkit.finite_width(mlp, rng.normal(size=(3, 16)), tensors="all")
        for m in sizes or SIZES[name]:
            x = rng.normal(size=(m, 16))
            ntkit.infinite_width(mlp, x)  # compile for this shape
            t_inf = _timed(ntkit.infinite_width, mlp, x)
            t_mean = _timed(ntkit.finite_width, mlp, x, tensors="mean")
            rows.append((name, f"theta1 Gram, m={m}", t_mean, t_inf))
        x = rng.normal(size=(full_size, 16))
        rows.append((name, f"all tensors, m={full_size}", _timed(ntkit.finite_width, mlp, x, tensors="all"), _timed(ntkit.infinite_width, mlp, x)))
    load = os.getloadavg()[0]

    lines = [
        "## First-order statistics (depth 8, inputs in R^16)",
        "",
        "Targets: m = 1000 gelu theta1 Gram under 30 s and at most 20x the infinite-width time.",
        f"Machine: 2 cores shared with other jobs (1-minute load average {load:.1f} at the end): wall times vary, CPU times less.",
        "",
        "| activation | case | first order wall (s) | first order CPU (s) | infinite width wall (s) | ratio (wall) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {case} | {t[0]:.2f} | {t[1]:.2f} | {ti[0]:.3f} | {t[0] / ti[0]:.0f}x |" for a, case, t, ti in rows]
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


if __name__ == "__main__":
    sizes = tuple(int(s) for s in sys.argv[1:]) or None
    print(main(sizes))
