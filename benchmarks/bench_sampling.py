"""Benchmark: the Monte-Carlo sampler (networks per second, fraction of peak, neural-tangents).

For (n, L, m) in {(20, 4, 2), (128, 4, 4), (512, 3, 8)} (relu, c_b = 0.1, c_w = 2, inputs in R^16,
4 output neurons) it times ``ntkit.sample`` after a warm-up run (JIT compilation excluded) with
one thread, with the default threads (one per core) and with two processes, and reports
networks/s and the fraction of the machine's peak float64 rate: the peak is measured in the same
run by a 2048^3 float64 matmul, the sampler's flops are counted analytically
(``ntkit.sampling.forward.flops_per_network``); both ``statistics="all"`` (every tensor) and
``"mean"`` (K and theta only). It then runs 10^6 networks of width 20 end to end (target: under
60 s on 2 cores) in the same three ways, times drawing the parameters alone (the floor of any
sampler of Gaussian networks), and compares the mean NTK at equal sample count against
neural-tangents' ``monte_carlo_kernel_fn`` in the peer venv (target: at least 30x faster).
Writes ``docs/benchmarks/sampling.md``.
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


#: How chunks of networks are computed: ``ntkit.sample`` arguments.
HOW = {"1 thread": {"threads": 1}, "default (a thread per core)": {}, "2 processes": {"workers": 2}}


def throughput(width: int, depth: int, m: int, networks: int, how: str, statistics: str) -> float:
    """Networks per second of ``ntkit.sample`` after a warm-up of the same shapes."""
    mlp, x = _mlp(depth), _inputs(m)
    kwargs = dict(width=width, statistics=statistics, **HOW[how])
    ntkit.sample(mlp, x, n_networks=networks, seed=99, **kwargs)  # compile: chunk and block sizes depend on n_networks
    if "workers" in HOW[how]:  # worker processes compile once per process: time more networks
        networks *= 2
    seconds = _timed(lambda: ntkit.sample(mlp, x, n_networks=networks, seed=0, **kwargs))
    return networks / seconds


def million(how: str) -> float:
    """Seconds for 10^6 networks of width 20, depth 4, m = 2, everything included."""
    return _timed(lambda: ntkit.sample(_mlp(4), _inputs(2), width=20, n_networks=1_000_000, seed=0, **HOW[how]))


def parameter_draws(width: int, depth: int, networks: int) -> float:
    """Seconds to draw the Gaussian weights and biases of ``networks`` networks (16 inputs, 4 outputs)
    with the sampler's keys and nothing else: the floor of any Monte-Carlo over Gaussian networks."""
    shapes = [(width, N0)] + [(width, width)] * (depth - 2) + [(4, width)]

    @jax.jit
    def draw(indices):
        def one(i):
            key = jax.random.fold_in(jax.random.PRNGKey(0), i)
            total = 0.0
            for layer, shape in enumerate(shapes, start=1):
                k_w, k_b = jax.random.split(jax.random.fold_in(key, layer))
                total += jax.random.normal(k_w, shape, jnp.float64).sum() + jax.random.normal(k_b, shape[:1], jnp.float64).sum()
            return total
        return jax.vmap(one)(indices)

    indices = jnp.arange(networks, dtype=jnp.uint32)
    draw(indices).block_until_ready()
    return min(_timed(lambda: draw(indices).block_until_ready()) for _ in range(3))


def against_neural_tangents(width: int, depth: int, m: int, networks: int) -> dict:
    """Mean output NTK from ``networks`` networks: ntkit (every tensor, and means only) vs
    neural-tangents monte_carlo_kernel_fn, and the time of drawing the parameters alone."""
    mlp, x = _mlp(depth), _inputs(m)
    times, runs = {}, {}
    for statistics in ("all", "mean"):
        ntkit.sample(mlp, x, width=width, n_networks=networks, seed=99, statistics=statistics)
        start = time.perf_counter()
        runs[statistics] = ntkit.sample(mlp, x, width=width, n_networks=networks, seed=0, statistics=statistics)
        times[statistics] = time.perf_counter() - start
    ds = runs["mean"]
    row = {"case": f"n={width}, L={depth}, m={m}, {networks} networks", "ntkit_s": times["all"], "mean_s": times["mean"],
           "draws_s": parameter_draws(width, depth, networks)}
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
        widths = (N0,) + (width,) * (depth - 1) + (4,)
        for statistics, how in [("all", how) for how in HOW] + [("mean", "1 thread"), ("mean", "default (a thread per core)")]:
            count = networks * (64 if statistics == "mean" and width > 20 else 1)
            rate = throughput(width, depth, m, count, how, statistics)
            rows.append((width, depth, m, statistics, how, rate, flops_per_network(widths, m, statistics) * rate / peak))
    seconds = {how: million(how) for how in HOW} if full else {}
    nt = [against_neural_tangents(20, 4, 2, 4096), against_neural_tangents(128, 4, 4, 256)]

    lines = [
        "## Monte-Carlo sampler (relu, c_b = 0.1, c_w = 2, inputs in R^16, 4 output neurons)",
        "",
        f"Machine: {os.cpu_count()} cores; peak float64 rate measured by a 2048^3 matmul in the same run: "
        f"{peak / 1e9:.1f} GFLOP/s. Flops of the sampler counted analytically (forward pass, NTK "
        f"recursion per sample pair a <= b, pair observables). Load average at the end: {os.getloadavg()[0]:.1f} "
        "(other jobs sharing the 2 cores slow every number here).",
        "",
        "| n | L | m | statistics | chunks computed by | networks/s | fraction of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {L} | {m} | {st} | {w} | {r:,.1f} | {f:.1%} |" for n, L, m, st, w, r, f in rows]
    if seconds:
        lines += ["", "10^6 networks of width 20 (L = 4, m = 2, every tensor), target under 60 s on 2 cores: "
                  + ", ".join(f"{s:.1f} s with {how}" for how, s in seconds.items()) + "."]
    lines += ["", "Mean NTK at equal sample count against neural-tangents `monte_carlo_kernel_fn` (target: >= 30x faster). "
              "\"draws\" is the time to draw the networks' Gaussian parameters alone with the same keys (threefry, "
              "float64): no sampler of these networks can be faster than that.", "",
              "| case | ntkit, every tensor (s) | ntkit, means only (s) | draws alone (s) | neural-tangents (s) "
              "| speed-up: every tensor / means only | max abs z (ntkit means - nt) |", "|---|---|---|---|---|---|---|"]
    for row in nt:
        ours = f"| {row['case']} | {row['ntkit_s']:.3f} | {row['mean_s']:.3f} | {row['draws_s']:.3f} "
        if row["peer"] == "ok":
            lines.append(ours + f"| {row['nt_s']:.2f} | {row['nt_s'] / row['ntkit_s']:.1f}x / {row['nt_s'] / row['mean_s']:.1f}x "
                         f"| {row['max_z']:.1f} |")
        else:
            lines.append(ours + f"| {row['peer']} | – | – |")
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return text


if __name__ == "__main__":
    print(main(full="--quick" not in sys.argv))
