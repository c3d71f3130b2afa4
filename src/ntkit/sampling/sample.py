"""``ntkit.sample``: Monte-Carlo estimates of the per-layer statistics of random networks.

Networks 0..N-1 are split into fixed chunks of ``chunk_size`` consecutive indices (a function of
the problem and N only, never of ``batch_size``, ``threads`` or ``workers``). Each chunk is reduced to an
:class:`~ntkit.sampling.accumulator.Accumulator`; chunks are merged in index order, so the
result is bit-for-bit the same however the chunks were computed: by threads of this process
(``threads``, default one per available core: XLA runs one compiled call of small networks on
one core), by a local process pool (``workers > 1``) or by any ``concurrent.futures.Executor``
(e.g. a Dask cluster's ``distributed.Client(address).get_executor()``).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections import deque
from itertools import islice
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from ..activations import get_activation
from ..network import MLP, hidden_widths, is_integer, validate_inputs
from ..results import PAIR_DIMS, QUAD_DIMS, config_of, sample_coords, with_provenance
from .accumulator import Accumulator, from_batch, merge
from .checkpoint import read_checkpoint, write_checkpoint
from .estimates import estimate
from .forward import STATISTICS, NetworkSpec, batch_observables, flops_per_network

__all__ = ["sample", "run_chunk", "default_chunk_size", "default_block"]

MAX_CHUNK = 4096
MAX_BLOCK = 256
MIN_CHUNKS = 8  # runs of 16+ networks are split into at least this many chunks
_CHUNK_FLOATS = 2**24  # accumulator temporaries per chunk (~128 MB)
_CHUNK_FLOPS = 2e10  # about a second or two of one core per chunk
_BLOCK_FLOATS = 2**24  # per-layer NTK matrices of one block (~128 MB)


def _available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one, as on Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _floor_pow2(value: float) -> int:
    return 1 if value < 2 else 2 ** int(math.floor(math.log2(value)))


def default_chunk_size(widths: tuple[int, ...], m: int, n_networks: int, statistics: str = "all") -> int:
    """Networks per chunk: a power of two in 2..4096 bounding memory and compute per chunk, and at
    most n_networks / MIN_CHUNKS so that threads and workers have chunks to share."""
    depth = len(widths) - 1
    by_memory = _CHUNK_FLOATS / (12 * depth * m**4 + 16)
    by_time = _CHUNK_FLOPS / flops_per_network(widths, m, statistics)
    return max(2, min(MAX_CHUNK, _floor_pow2(min(by_memory, by_time, n_networks / MIN_CHUNKS))))


def default_block(widths: tuple[int, ...], m: int, chunk: int, statistics: str = "all") -> int:
    """Networks per compiled block, fixed by the problem and the chunk size (never by batch size,
    threads or workers): a power of two <= 256 within memory and <= chunk / 2 (a call computes at
    least two blocks, so a chunk is never padded with discarded networks)."""
    n, depth, r = max(widths[1:]), len(widths) - 1, widths[-1]
    per_network = 4 * m * m * n**2 + 16 * m**4 if statistics == "all" else 2 * m * depth * r * n + 2 * n * max(widths)
    return min(MAX_BLOCK, _floor_pow2(_BLOCK_FLOATS / per_network), max(1, chunk // 2))


def run_chunk(spec: NetworkSpec, x: np.ndarray, seed: int, start: int, stop: int, batch_size: int, block: int,
              statistics: str = "all") -> dict:
    """Accumulator arrays of networks start..stop-1, computed ``batch_size`` networks per call."""
    parts = [batch_observables(spec, x, seed, first, min(batch_size, stop - first), block, capacity=batch_size,
                               statistics=statistics)
             for first in range(start, stop, batch_size)]
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    for values in joined.values():
        finite = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if not finite.all():
            raise ValueError(f"network {start + int(np.argmin(finite))} overflows float64 or its activation is not finite on some "
                             "preactivations (e.g. log of a negative number): scale down the inputs or the hyperparameters")
    acc = from_batch(joined)
    return {"count": acc.count, **acc.arrays()}


def _accumulator(result: dict) -> Accumulator:
    return Accumulator.from_arrays(result["count"], {k: v for k, v in result.items() if k != "count"})


def _activation_ref(mlp: MLP):
    """The activation's registry name when it names the same function (cheap to send to workers)."""
    act = mlp.activation
    try:
        named = get_activation(act.name)
    except ValueError:
        return act
    same = getattr(named.fn, "__qualname__", None) == getattr(act.fn, "__qualname__", None)
    return act.name if same and named.slopes == act.slopes else act


def _check_int(name: str, value, minimum: int, why: str = "") -> int:
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{why}, got {value!r}")
    return int(value)


def _infinite_values(infinite: xr.Dataset, mlp: MLP, x: np.ndarray) -> dict[str, np.ndarray]:
    """K and theta of layers 1..L from ``infinite``, which must have been computed for this MLP and x."""
    if not isinstance(infinite, xr.Dataset):
        raise TypeError(f"infinite must be an xarray.Dataset from ntkit.infinite_width, got {type(infinite).__name__}")
    stored = config_of(infinite).get("mlp")
    if stored is not None and stored != json.loads(json.dumps(mlp.describe())):
        raise ValueError(f"infinite was computed for a different MLP ({stored}), not {mlp.describe()}")
    if "x" in infinite and (infinite["x"].shape != x.shape or not np.array_equal(infinite["x"].values, x)):
        raise ValueError("infinite was computed for different inputs x than the ones sampled")
    depth, m = mlp.depth, x.shape[0]
    out = {}
    for name in ("K", "theta"):
        if name not in infinite:
            raise ValueError(f"infinite must hold {name} (a Dataset from ntkit.infinite_width), it has {list(infinite.data_vars)}")
        try:
            values = np.asarray(infinite[name].sel(layer=np.arange(1, depth + 1)).values, dtype=np.float64)
        except KeyError as exc:
            raise ValueError(f"infinite must hold every layer 1..{depth} (use layers='all')") from exc
        if values.shape != (depth, m, m):
            raise ValueError(f"infinite {name} has shape {values.shape}, expected (layers, m, m) = {(depth, m, m)} for these inputs")
        out[name] = values
    return out


def sample(
    mlp: MLP,
    x,
    width: int | tuple[int, ...],
    n_networks: int,
    seed: int = 0,
    batch_size: int | None = None,
    *,
    output_width: int = 4,
    statistics: str = "all",
    dtype: str = "float64",
    infinite: xr.Dataset | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = 5.0,
    workers: int = 1,
    threads: int | None = None,
    executor: Executor | None = None,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Monte-Carlo estimates of K, theta and n * (V, D, F, A, B) per layer, each with ``<name>_stderr``.

    ``x`` is (m, n_0); ``width`` the hidden widths n_1..n_(L-1) (an int for equal widths);
    the output layer has ``output_width`` neurons. Tensors of layer l are normalised by its fan-in
    n_(l-1) and isolated by neuron patterns (theory specification, section 1.1).
    ``statistics="mean"`` estimates K and theta only, much faster at large width: theta of each
    layer is then averaged over ``output_width`` of its neurons (all output neurons), found by
    backpropagation instead of the n x n NTK recursion (same networks, same K). With
    ``infinite`` (a Dataset of K, theta, e.g. from ``ntkit.infinite_width``) the result also holds
    K1 = n (mean - K) and theta1 likewise. Network k draws its parameters from
    ``fold_in(PRNGKey(seed), k)``: the result does not depend on ``batch_size``, ``workers``,
    ``threads`` or ``executor``. Chunks of networks are computed by ``threads`` threads of this
    process (default: one per available core), by ``workers`` local processes when ``workers > 1``,
    or by ``executor``. ``checkpoint`` saves the merged accumulators every ``checkpoint_every`` seconds;
    rerunning with the same arguments resumes there. ``progress(done, total)`` is called per chunk.
    """
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be an ntkit.MLP, got {type(mlp).__name__}")
    x = validate_inputs(x)
    m, n0 = x.shape
    hidden = hidden_widths(width, mlp.depth)
    if any(w < 2 for w in hidden):
        raise ValueError(f"widths must be >= 2 (pairs of distinct neurons isolate V, D, F, A, B), got {width!r}")
    output_width = _check_int("output_width", output_width, 2, " (pairs of distinct output neurons)")
    n_networks = _check_int("n_networks", n_networks, 2, " (standard errors need two networks)")
    seed = _check_int("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"seed must be < 2**32, got {seed}")
    workers = _check_int("workers", workers, 1)
    threads = _available_cores() if threads is None else _check_int("threads", threads, 1)
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be one of {sorted(STATISTICS)}, got {statistics!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    widths = (n0, *hidden, output_width)
    chunk = default_chunk_size(widths, m, n_networks, statistics) if chunk_size is None else _check_int("chunk_size", chunk_size, 2)
    block = default_block(widths, m, chunk, statistics)
    batch = min(chunk, n_networks) if batch_size is None else _check_int("batch_size", batch_size, 1)
    inf = None if infinite is None else _infinite_values(infinite, mlp, x)
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(done, total), got {type(progress).__name__}")
    if not (isinstance(checkpoint_every, (int, float)) and math.isfinite(checkpoint_every) and checkpoint_every >= 0):
        raise ValueError(f"checkpoint_every must be a finite number of seconds >= 0, got {checkpoint_every!r}")

    spec = NetworkSpec(widths, _activation_ref(mlp), *(tuple(getattr(mlp, f"{p}_at")(l) for l in range(1, mlp.depth + 1))
                                                      for p in ("c_b", "c_w", "lambda_b", "lambda_w")), dtype=dtype)
    config = {"mlp": mlp.describe(), "x": x.tolist(), "widths": list(widths), "n_networks": n_networks, "seed": seed,
              "dtype": dtype, "chunk_size": chunk, "statistics": statistics}
    bounds = [(s, min(s + chunk, n_networks)) for s in range(0, n_networks, chunk)]

    acc, done = None, 0
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        restored = read_checkpoint(checkpoint, config)
        if restored is not None:
            acc, done = restored
    report = progress if progress is not None else (lambda done_, total: None)
    report(bounds[done - 1][1] if done else 0, n_networks)
    last_save = time.monotonic()

    def absorb(result: dict) -> None:
        nonlocal acc, done, last_save
        acc = merge(acc, _accumulator(result))
        done += 1
        if checkpoint is not None and (done == len(bounds) or time.monotonic() - last_save >= checkpoint_every):
            write_checkpoint(checkpoint, acc, done, config)
            last_save = time.monotonic()
        report(bounds[done - 1][1], n_networks)

    todo = bounds[done:]
    problem = (spec, x, seed, batch, block, statistics)
    if executor is not None:
        _run_ordered(executor, problem, todo, absorb, window=4 * workers + 4)
    elif workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            _run_ordered(pool, problem, todo, absorb, window=2 * workers)
    else:
        first, rest = (todo[:1], todo[1:]) if threads > 1 else (todo, [])
        for start, stop in first:  # compiles the program once, before threads share it
            absorb(run_chunk(spec, x, seed, start, stop, batch, block, statistics))
        if rest:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                _run_ordered(pool, problem, rest, absorb, window=2 * threads)

    fan_in = np.array(widths[:-1])
    values = estimate(acc, fan_in, inf)
    return _dataset(values, mlp.depth, m, config, seed, n_networks, width, hidden, output_width)


def _run_ordered(executor: Executor, problem: tuple, todo, absorb, window: int) -> None:
    """Submit chunks (at most ``window`` in flight) and absorb their results in chunk order.

    ``problem`` is (spec, x, seed, batch, block, statistics), the arguments of :func:`run_chunk`
    around a chunk's bounds."""
    spec, x, seed, batch, block, statistics = problem
    queue = iter(todo)
    submit = lambda bounds: executor.submit(run_chunk, spec, x, seed, *bounds, batch, block, statistics)  # noqa: E731
    pending = deque(submit(b) for b in islice(queue, window))
    while pending:
        result = pending.popleft().result()
        pending.extend(submit(b) for b in islice(queue, 1))
        absorb(result)


def _dataset(values: dict, depth: int, m: int, config: dict, seed: int, n_networks: int, width, hidden, output_width) -> xr.Dataset:
    coords = sample_coords(depth, m)
    data = {}
    for name, arr in values.items():
        dims = PAIR_DIMS if arr.ndim == 3 else QUAD_DIMS
        data[name] = (dims, arr)
    ds = xr.Dataset(data, coords={d: coords[d] for d in QUAD_DIMS})
    ds = with_provenance(ds, config, seed=seed)
    ds.attrs["n_networks"] = int(n_networks)
    ds.attrs["width"] = int(width) if isinstance(width, (int, np.integer)) else np.array(hidden, dtype=np.int64)
    ds.attrs["hidden_widths"] = np.array(hidden, dtype=np.int64)
    ds.attrs["output_width"] = int(output_width)
    return ds
