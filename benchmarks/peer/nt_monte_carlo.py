"""neural-tangents' Monte-Carlo NNGP and NTK (``nt.monte_carlo_kernel_fn``) of a finite MLP (peer venv).

The mean over ``n_samples`` random networks of width ``width`` (``_common.mlp``, one output) of
f(x_a) f(x_b) and of the empirical NTK, with neural-tangents' own sampling (networks drawn one
after another from ``jax.random.PRNGKey(seed)``; ``vmap_axes=0``). Timing: the kernel function is
asked for the estimates after 1 and after ``n_samples`` networks; the first (compilation
included) is ``compile_s``; the remaining n_samples - 1 networks give ``time_per_network_s``, and
``time_s`` is n_samples times that (all networks, compilation excluded).
Interface: ``benchmarks/_peer.py`` (``nt_monte_carlo``).
"""

from __future__ import annotations

import time

import jax

import _common


def main() -> None:
    work, request, arrays = _common.read_request()
    baseline = _common.peak_rss_mib()
    n_samples = int(request["n_samples"])
    if n_samples < 2:
        raise ValueError("n_samples must be at least 2 (the first network is the warm-up)")
    init_fn, apply_fn, _ = _common.mlp(request["activation"], int(request["depth"]), float(request["c_w"]), float(request["c_b"]), width=int(request["width"]))
    kwargs = {"device_count": 0, "vmap_axes": 0}
    if "implementation" in request:
        kwargs["implementation"] = _common.nt.NtkImplementation[request["implementation"]]
    kernel_fn = _common.nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(int(request.get("seed", 0))), {1, n_samples}, **kwargs)
    estimates = kernel_fn(arrays["x"], None, ("nngp", "ntk"))
    start = time.perf_counter()
    jax.block_until_ready(next(estimates))
    first = time.perf_counter()
    out = jax.block_until_ready(next(estimates))
    end = time.perf_counter()
    result = {
        "compile_s": first - start,
        "time_s": (end - first) * n_samples / (n_samples - 1),
        "time_per_network_s": (end - first) / (n_samples - 1),
        "n_samples": n_samples,
    }
    _common.write_result(work, result, {"nngp": out.nngp, "ntk": out.ntk}, baseline)


if __name__ == "__main__":
    main()
