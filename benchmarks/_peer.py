"""Run a neural-tangents script in the peer venv ``.peer/`` and return its results.

neural-tangents 0.6.5 needs jax 0.4.25, numpy < 2 and TensorFlow, which cannot share ntkit's
venv; ``make peer`` builds ``.peer/`` once (``benchmarks/peer/requirements*.txt``). A peer script
``benchmarks/peer/<name>.py`` runs under ``.peer/bin/python`` (jax float64 on) in a fresh
subprocess, so each call also measures its own peak memory.

Interface (every peer script):

    run_peer(name, request, arrays) -> dict

- ``request``: a JSON-serialisable dict, written to ``<dir>/request.json``;
- ``arrays``: numpy arrays by name, written to ``<dir>/inputs.npz``;
- the script is called as ``.peer/bin/python benchmarks/peer/<name>.py <dir>`` and writes
  ``<dir>/result.json`` (a dict) and optionally ``<dir>/result.npz``; the returned dict is the
  JSON with every array of the npz added under its key.

Every result holds ``versions`` (jax, jaxlib, neural_tangents, numpy) and ``peak_rss_mib``: the
process's peak resident memory (VmHWM) minus its value after imports, in MiB — the
memory of the whole call, XLA buffers and compilation included; meaningful per case only when
one call runs one case. Times are wall-clock seconds of a call made after a warm-up call on the
same shapes (JIT compilation excluded); ``compile_s`` is the warm-up call's time.

``nt_versions`` — nothing but ``versions`` (request ignored).

``nt_kernels`` — infinite-width ``stax`` kernels of Dense, act, Dense, ..., Dense (``depth``
Dense layers, NTK parameterisation, ``W_std = sqrt(c_w)``, ``b_std = sqrt(c_b)``).
    request: {"cases": [{"name": str, "activation": "relu"|"erf"|"gelu"|"tanh", "depth": int,
              "c_w": float, "c_b": float, "deg": int (tanh only: ElementwiseNumerical
              Gauss-Hermite nodes), "x": array key}], "repeats": int (timed calls, best kept)}
    arrays:  the inputs (m, n_0) under the keys named by the cases.
    result:  {"cases": [{"name", "time_s", "compile_s"}], ...} and arrays "<name>/nngp",
             "<name>/ntk" (m, m): the output layer's K and Theta.

``nt_monte_carlo`` — ``nt.monte_carlo_kernel_fn`` mean NTK of the same MLP at finite width.
    request: {"activation", "depth", "c_w", "c_b", "width": int, "n_samples": int (>= 2),
              "seed": int, optional "implementation": an ``NtkImplementation`` name; other keys
              are ignored}; arrays: {"x": (m, n_0)}. neural-tangents draws the networks one
              after another (no batching over networks).
    result:  {"compile_s" (first network, compilation included), "time_per_network_s" (from
             the other n_samples - 1), "time_s" (n_samples x time_per_network_s), "n_samples",
             ...} and arrays
             "nngp", "ntk" (m, m): the Monte-Carlo means over all n_samples networks (jax's
             PRNG, not ntkit's; no standard errors).

``nt_empirical`` — ``nt.empirical_ntk_fn`` of the MLP's output at random parameters, per
implementation.
    request: {"activation", "depth", "c_w", "c_b", "width": int, "seed": int, "repeats": int,
              "implementations": ["JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS",
              "STRUCTURED_DERIVATIVES", "AUTO"]}; arrays: {"x": (m, n_0)}.
    result:  {"implementations": {impl: {"time_s", "compile_s", "peak_rss_mib"}}, ...} and
             arrays "ntk/<impl>" (m, m). ``peak_rss_mib`` per implementation is the rise of the
             process's peak while that implementation ran (implementations run in the order
             given, so only rises are visible; run one implementation per call for exact peaks).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".peer" / "bin" / "python"
PEER_SCRIPTS = ROOT / "benchmarks" / "peer"


class PeerUnavailable(RuntimeError):
    """The peer venv ``.peer/`` has not been built (run ``make peer``)."""


def available() -> bool:
    """Whether ``.peer/`` exists and neural-tangents imports in it."""
    if not PEER_PYTHON.exists():
        return False
    probe = subprocess.run([str(PEER_PYTHON), "-c", "import neural_tangents"], capture_output=True)
    return probe.returncode == 0


def run_peer(name: str, request: dict, arrays: dict[str, np.ndarray] | None = None, timeout: float = 3600.0) -> dict:
    """Run ``benchmarks/peer/<name>.py`` on ``request`` and ``arrays``; return its result dict.

    Raises ``PeerUnavailable`` when ``.peer/`` is missing and ``RuntimeError`` (with the peer's
    stderr) when the script fails.
    """
    script = PEER_SCRIPTS / f"{name}.py"
    if not script.exists():
        raise ValueError(f"no peer script {script}")
    if not PEER_PYTHON.exists():
        raise PeerUnavailable(f"{PEER_PYTHON} not found: run `make peer` to build the neural-tangents venv")
    with tempfile.TemporaryDirectory(prefix="ntkit-peer-") as tmp:
        work = Path(tmp)
        (work / "request.json").write_text(json.dumps(request))
        np.savez(work / "inputs.npz", **(arrays or {}))
        proc = subprocess.run([str(PEER_PYTHON), str(script), str(work)], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"peer script {name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        result = json.loads((work / "result.json").read_text())
        if (work / "result.npz").exists():
            with np.load(work / "result.npz") as data:
                result.update({key: data[key] for key in data.files})
    return result
