"""A persistent cache of compiled XLA programs, so that a new process does not compile again.

The first call of ntkit's compiled steps in a process pays XLA's compilation: for
``finite_width`` (gelu, depth 8, 1000 inputs, ``tensors="mean"``) a new process with an empty
cache takes about 1.6x as long as one with the cache filled, and that one about 1.3x a second
call (figures in ``docs/benchmarks.md``). JAX can keep compiled programs on disk, keyed by the program, the compiler
options, the backend and the JAX version, so an entry is only ever reused for the identical
program. The ``ntkit`` command line turns the cache on (each command is a new process); library
users call :func:`enable_compilation_cache` themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

__all__ = ["enable_compilation_cache", "default_cache_dir"]

MIN_COMPILE_SECONDS = 0.01  # programs compiled faster than this are not worth a disk read
MAX_BYTES = 2**30  # least recently used entries are evicted beyond this


def default_cache_dir() -> Path:
    """$NTKIT_CACHE_DIR if set, else $XDG_CACHE_HOME/ntkit/jax, else ~/.cache/ntkit/jax."""
    if os.environ.get("NTKIT_CACHE_DIR"):
        return Path(os.environ["NTKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ntkit" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Keep compiled programs that took over ``MIN_COMPILE_SECONDS`` to compile in ``path``
    (default :func:`default_cache_dir`, at most ``MAX_BYTES``) for every later process; returns
    the directory."""
    directory = Path(path) if path is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return directory
