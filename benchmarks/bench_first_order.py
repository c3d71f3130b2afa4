"""Benchmark: first-order statistics against the infinite-width kernels on the same inputs.

theta1 Gram (tensors="mean") for m in {100, 1000} inputs in R^16 at depth 8, gelu (critical) and
relu (0, 2); the full four-sample tensors for m = 8. Each case is timed after a warm-up call on
a small input set (JIT compilation excluded) and reported with the ratio to ``infinite_width``.
Writes ``docs/benchmarks/first_order.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import ntkit

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "first_order.md"


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _configurations():
    gelu = ntkit.critical("gelu")
    return {"gelu": ntkit.MLP(depth=8, activation="gelu", c_b=gelu.c_b, c_w=gelu.c_w), "relu": ntkit.MLP(depth=8, activation="relu", c_b=0.0, c_w=2.0)}


def main(sizes=(100, 1000), full_size: int = 8) -> str:
    rng = np.random.default_rng(0)
    rows = []
    for name, mlp in _configurations().items():
        ntkit.finite_width(mlp, rng.normal(size=(4, 16)), tensors="mean")  # warm-up: compile
        ntkit.finite_width(mlp, rng.normal(size=(3, 16)), tensors="all")
        for m in sizes:
            x = rng.normal(size=(m, 16))
            t_inf = _timed(ntkit.infinite_width, mlp, x)
            t_mean = _timed(ntkit.finite_width, mlp, x, tensors="mean")
            rows.append((name, f"theta1 Gram, m={m}", t_mean, t_inf))
        x = rng.normal(size=(full_size, 16))
        rows.append((name, f"all tensors, m={full_size}", _timed(ntkit.finite_width, mlp, x, tensors="all"), _timed(ntkit.infinite_width, mlp, x)))

    lines = [
        "## First-order statistics (depth 8, inputs in R^16)",
        "",
        "Targets: m = 1000 gelu theta1 Gram under 30 s and at most 20x the infinite-width time.",
        "",
        "| activation | case | first order (s) | infinite width (s) | ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {case} | {t:.2f} | {ti:.3f} | {t / ti:.0f}x |" for a, case, t, ti in rows]
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


if __name__ == "__main__":
    sizes = tuple(int(s) for s in sys.argv[1:]) or (100, 1000)
    print(main(sizes))
