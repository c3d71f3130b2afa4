"""Benchmark: first-order statistics against the infinite-width kernels on the same inputs.

theta1 Gram (tensors="mean") at depth 8 for inputs in R^16: gelu (critical) and relu (0, 2) for
m in {100, 1000}; the full four-sample tensors for m = 8. Each case runs in a fresh process with
an empty on-disk compilation cache: the first call there includes every JIT compilation (what a
user's one-off call costs); a second call (mean path only: the full tensors are timed once) is
timed on new inputs of the same shape (nothing computed from the first inputs is reused, only
compilations) as wall and process (CPU, both cores) time and compared with a second call of
``infinite_width`` on those inputs. For the mean path a second fresh process times its first
call with the cache the first process filled (what the next CLI command costs). Writes
``docs/benchmarks/first_order.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "first_order.md"
CASES = [("gelu", "mean", 100), ("gelu", "mean", 1000), ("gelu", "all", 8), ("relu", "mean", 100), ("relu", "mean", 1000), ("relu", "all", 8)]


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - start, time.process_time() - cpu


def _case(activation: str, m: int, cache: str, draw: int = 0):
    """The network and inputs (draw ``draw``) of a case, with the compilation cache at ``cache`` turned on."""
    import ntkit

    ntkit.enable_compilation_cache(cache)
    if activation == "gelu":
        point = ntkit.critical("gelu")
        mlp = ntkit.MLP(depth=8, activation="gelu", c_b=point.c_b, c_w=point.c_w)
    else:
        mlp = ntkit.MLP(depth=8, activation="relu", c_b=0.0, c_w=2.0)
    return mlp, np.random.default_rng([m, draw]).normal(size=(m, 16))


def first_call(activation: str, tensors: str, m: int, cache: str) -> dict:
    """The first call in this (fresh) process, with the compilation cache ``cache``."""
    import ntkit

    mlp, x = _case(activation, m, cache)
    return {"first": _timed(ntkit.finite_width, mlp, x, tensors=tensors)[0]}


def measure(activation: str, tensors: str, m: int, cache: str) -> dict:
    """One case in this (fresh) process: cold call, warm call (mean path only: the full tensors
    take minutes and compile little), warm infinite-width call."""
    import ntkit

    mlp, x = _case(activation, m, cache)
    cold = _timed(ntkit.finite_width, mlp, x, tensors=tensors)
    _, x = _case(activation, m, cache, draw=1)  # new inputs: nothing computed from the first ones is reused
    warm = _timed(ntkit.finite_width, mlp, x, tensors=tensors) if tensors == "mean" else cold
    ntkit.infinite_width(mlp, x)
    infinite = _timed(ntkit.infinite_width, mlp, x)
    return {"cold": cold[0], "wall": warm[0], "cpu": warm[1], "infinite": infinite[0]}


def main(cases=CASES) -> str:
    rows = []
    for activation, tensors, m in cases:
        with tempfile.TemporaryDirectory() as cache:
            times = _in_fresh_process("measure", activation, tensors, m, cache)
            cached = _in_fresh_process("first_call", activation, tensors, m, cache)["first"] if tensors == "mean" else None
        rows.append((activation, tensors, m, {**times, "cached": cached}))
    load = os.getloadavg()[0]

    lines = [
        "## First-order statistics (depth 8, inputs in R^16)",
        "",
        "Targets: m = 1000 gelu theta1 Gram under 30 s and at most 20x the infinite-width time.",
        "Each case in a fresh process with an empty compilation cache: the first call includes all JIT compilation; the second call, on new inputs of the same shape, is timed as wall and CPU (both cores) time and compared with a second call of `infinite_width` on them (the full tensors are timed once). "
        "Mean path: a second fresh process times its first call with the on-disk compilation cache the first process filled (`ntkit.enable_compilation_cache`, on in the CLI).",
        f"Machine: 2 cores, possibly shared (1-minute load average {load:.1f} at the end).",
        "",
        "| activation | case | first call, cold (s) | first call, compilation cache filled (s) | second call wall (s) | second call CPU (s) | infinite width wall (s) | ratio (wall, second calls) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for activation, tensors, m, t in rows:
        case = f"theta1 Gram, m={m}" if tensors == "mean" else f"all tensors, m={m}"
        cached = "–" if t["cached"] is None else f"{t['cached']:.2f}"
        lines.append(f"| {activation} | {case} | {t['cold']:.2f} | {cached} | {t['wall']:.2f} | {t['cpu']:.2f} | {t['infinite']:.3f} "
                     f"| {t['wall'] / t['infinite']:.0f}x |")
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


def _in_fresh_process(function: str, *args) -> dict:
    """``function(*args)`` of this module in a new Python process (its JSON result)."""
    code = f"import json, bench_first_order as b; print(json.dumps(b.{function}(*{args!r})))"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(main())
