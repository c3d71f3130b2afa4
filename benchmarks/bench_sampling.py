"""Benchmark: the Monte-Carlo sampler (networks per second, fraction of peak, neural-tangents).

For (n, L, m) in {(20, 4, 2), (128, 4, 4), (512, 3, 8)} (relu, c_b = 0.1, c_w = 2, inputs in R^16,
4 output neurons) it times ``ntkit.sample`` after a warm-up run (JIT compilation excluded) with
one process and with ``workers=2``, and reports networks/s and the fraction of the machine's
peak float64 rate: the peak is measured in the same run by a 2048^3 float64 matmul, the
sampler's flops are counted analytically (``ntkit.sampling.forward.flops_per_network``). It then
runs 10^6 networks of width 20 end to end (target: under 60 s on 2 cores), and the mean NTK at
equal sample count against neural-tangents' ``monte_carlo_kernel_fn`` in the peer venv
(target: at least 30x faster). Writes ``docs/benchmarks/sampling.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import ntkit
from ntkit.sampling.forward import flops_per_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import PeerUnavailable, run_peer  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "sampling.md"
C_B, C_W = 0.1, 2.0
N0 = 16
CASES = ((20, 4, 2, 65_536), (128, 4, 4, 256), (512, 3, 8, 2))  # (width, depth, m, networks timed)


def peak_flops(size: int = 2048, repeats: int = 5) -> float:
    """Best float64 matmul rate of this machine (flop/s), XLA on all cores."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)))
    matmul = jax.jit(lambda u, v: u @ v)
    matmul(a, a).block_until_ready()
    best = min(_timed(lambda: matmul(a, a).block_until_ready()) for _ in range(repeats))
    return 2.0 * size**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _mlp(depth: int) -> ntkit.MLP:
    return ntkit.MLP(depth=depth, activation="relu", c_b=C_B, c_w=C_W, lambda_b=C_B, lambda_w=C_W)


def _inputs(m: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(m, N0))


def throughput(width: int, depth: int, m: int, networks: int, workers: int) -> float:
    """Networks per second of ``ntkit.sample`` after a warm-up of the same shapes."""
    mlp, x = _mlp(depth), _inputs(m)
    ntkit.sample(mlp, x, width=width, n_networks=min(networks, 4096), seed=99, workers=1)  # compile
    if workers > 1:  # worker processes compile once per process: warm them on the same pool size
        networks *= 2
    seconds = _timed(lambda: ntkit.sample(mlp, x, width=width, n_networks=networks, seed=0, workers=workers))
    return networks / seconds


def million(workers: int) -> float:
    """Seconds for 10^6 networks of width 20, depth 4, m = 2, everything included."""
    return _timed(lambda: ntkit.sample(_mlp(4), _inputs(2), width=20, n_networks=1_000_000, seed=0, workers=workers))


def against_neural_tangents(width: int, depth: int, m: int, networks: int) -> dict:
    """Mean output NTK from ``networks`` networks: ntkit vs neural-tangents monte_carlo_kernel_fn."""
    mlp, x = _mlp(depth), _inputs(m)
    ntkit.sample(mlp, x, width=width, n_networks=networks, seed=99)
    start = time.perf_counter()
    ds = ntkit.sample(mlp, x, width=width, n_networks=networks, seed=0)
    ours = time.perf_counter() - start
    row = {"case": f"n={width}, L={depth}, m={m}, {networks} networks", "ntkit_s": ours}
    try:
        peer = run_peer("nt_monte_carlo", {"activation": "relu", "depth": depth, "c_w": C_W, "c_b": C_B, "width": width,
                                           "n_samples": networks, "batch_size": min(networks, 256), "seed": 0, "repeats": 1},
                        {"x": x})
    except (PeerUnavailable, ValueError, RuntimeError) as exc:
        row["peer"] = f"peer not available ({str(exc).splitlines()[0][:120]})"
        return row
    theta = ds["theta"].sel(layer=depth).values
    err = ds["theta_stderr"].sel(layer=depth).values
    row.update({"peer": "ok", "nt_s": float(peer["time_s"]),
                "max_z": float(np.max(np.abs(theta - peer["ntk"]) / (np.sqrt(2) * err)))})
    return row


def main(full: bool = True) -> str:
    peak = peak_flops()
    rows = []
    for width, depth, m, networks in CASES:
        flops = flops_per_network((N0,) + (width,) * (depth - 1) + (4,), m)
        for workers in (1, 2):
            rate = throughput(width, depth, m, networks, workers)
            rows.append((width, depth, m, workers, rate, flops * rate / peak))
    seconds = {w: million(w) for w in (1, 2)} if full else {}
    nt = [against_neural_tangents(20, 4, 2, 4096), against_neural_tangents(128, 4, 4, 256)]

    lines = [
        "## Monte-Carlo sampler (relu, c_b = 0.1, c_w = 2, inputs in R^16, 4 output neurons)",
        "",
        f"Machine: {os.cpu_count()} cores; peak float64 rate measured by a 2048^3 matmul in the same run: "
        f"{peak / 1e9:.1f} GFLOP/s. Flops of the sampler counted analytically (forward pass, NTK "
        f"recursion per sample pair a <= b, pair observables). Load average at the end: {os.getloadavg()[0]:.1f} "
        "(other jobs sharing the 2 cores slow every number here).",
        "",
        "| n | L | m | workers | networks/s | fraction of peak |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {L} | {m} | {w} | {r:,.1f} | {f:.1%} |" for n, L, m, w, r, f in rows]
    if seconds:
        lines += ["", "10^6 networks of width 20 (L = 4, m = 2), target under 60 s on 2 cores: "
                  + ", ".join(f"{s:.1f} s with workers={w}" for w, s in seconds.items()) + "."]
    lines += ["", "Mean NTK at equal sample count against neural-tangents `monte_carlo_kernel_fn` (target: >= 30x faster):", "",
              "| case | ntkit (s) | neural-tangents (s) | speed-up | max abs z (ntkit - nt) |", "|---|---|---|---|---|"]
    for row in nt:
        if row["peer"] == "ok":
            lines.append(f"| {row['case']} | {row['ntkit_s']:.2f} | {row['nt_s']:.2f} | {row['nt_s'] / row['ntkit_s']:.0f}x | {row['max_z']:.1f} |")
        else:
            lines.append(f"| {row['case']} | {row['ntkit_s']:.2f} | {row['peer']} | – | – |")
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


if __name__ == "__main__":
    print(main(full="--quick" not in sys.argv))
