"""Shared by the peer scripts (run under ``.peer/bin/python`` only): float64 jax, the request and
result files of ``benchmarks/_peer.py``, peak memory, timing, and the neural-tangents MLP."""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402


def peak_rss_mib() -> float:
    """Peak resident set size of this process image so far, in MiB: VmHWM of /proc/self/status
    (ru_maxrss is not used: Linux carries the parent's peak over fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_request() -> tuple[Path, dict, dict]:
    """(work dir, request dict, input arrays) from the directory named on the command line."""
    work = Path(sys.argv[1])
    request = json.loads((work / "request.json").read_text())
    with np.load(work / "inputs.npz") as data:
        arrays = {key: np.asarray(data[key], dtype=np.float64) for key in data.files}
    jnp.zeros(1).block_until_ready()  # initialise the backend before the memory baseline
    return work, request, arrays


def write_result(work: Path, result: dict, arrays: dict, baseline_mib: float) -> None:
    """Write result.json (with versions and peak memory above ``baseline_mib``) and result.npz."""
    import jaxlib

    result = dict(result)
    result["peak_rss_mib"] = peak_rss_mib() - baseline_mib
    result["baseline_rss_mib"] = baseline_mib
    result["versions"] = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "neural_tangents": nt.__version__, "numpy": np.__version__}
    (work / "result.json").write_text(json.dumps(result))
    if arrays:
        np.savez(work / "result.npz", **{key: np.asarray(value) for key, value in arrays.items()})


def timed(fn, *args, repeats: int = 1) -> tuple[object, float, float]:
    """(output, best time of ``repeats`` calls after a warm-up, warm-up time); blocks on the output."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - start
    best = math.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return out, best, compile_s


def activation(name: str, deg: int | None = None):
    """The stax layer of an ntkit activation name (gelu is the exact erf form)."""
    if name == "relu":
        return stax.Relu()
    if name == "erf":
        return stax.Erf()  # a * erf(b x) + c with a = b = 1, c = 0
    if name == "gelu":
        return stax.Gelu(approximate=False)
    if name == "tanh":
        if deg is None:
            raise ValueError("tanh needs 'deg', the Gauss-Hermite node count of ElementwiseNumerical")
        return stax.ElementwiseNumerical(jnp.tanh, deg=int(deg))
    raise ValueError(f"unknown activation {name!r}")


def mlp(act: str, depth: int, c_w: float, c_b: float, width: int = 1, deg: int | None = None):
    """stax.serial of Dense, act, ..., Dense (``depth`` Dense layers, NTK parameterisation, one
    output): ntkit's MLP with c_w = lambda_w = W_std^2 and c_b = lambda_b = b_std^2."""
    w_std = math.sqrt(c_w)
    b_std = math.sqrt(c_b) if c_b > 0 else None

    def dense(out):
        return stax.Dense(out, W_std=w_std, b_std=b_std, parameterization="ntk")

    layers = []
    for _ in range(depth - 1):
        layers += [dense(width), activation(act, deg)]
    layers.append(dense(1))
    return stax.serial(*layers)
