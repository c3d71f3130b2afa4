"""The layout of ntkit results and their netCDF I/O.

Every result is an ``xarray.Dataset`` with named dims

* ``layer`` (1..L), ``a1`` … ``a4`` (sample labels 0..m-1), ``width`` (hidden width n);
* two-sample tensors (``K``, ``theta``, ``K1``, ``theta1``) on (layer, a1, a2), four-sample
  tensors (``V``, ``D``, ``F``, ``A``, ``B``) on (layer, a1, a2, a3, a4), in the slot order of
  the theory specification;
* Monte-Carlo estimates carry ``<name>_stderr`` beside ``<name>``;
* theory results hold their inputs as the data variable ``x`` on (a1, input_dim);
* attributes: ``ntkit_version``, ``config`` (JSON of everything else needed to recompute), ``seed``
  where random, ``created`` (UTC, ISO 8601).

Files are netCDF-4 written atomically (temporary file, then rename). Nothing is pickled.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["PAIR_DIMS", "QUAD_DIMS", "with_provenance", "inputs_variable", "config_of", "save", "load", "sample_coords"]

PAIR_DIMS = ("layer", "a1", "a2")
QUAD_DIMS = ("layer", "a1", "a2", "a3", "a4")


@functools.lru_cache(maxsize=32)
def pair_coordinates(layers: tuple[int, ...], m: int) -> xr.Coordinates:
    """Coordinates layer (the given layers) and a1, a2 (0..m-1), built once per (layers, m):
    their pandas indexes are immutable, so results may share them (building them took 0.17 ms of
    a 1.8 ms ``infinite_width`` at m = 256)."""
    return xr.Coordinates({"layer": np.asarray(layers), "a1": np.arange(m), "a2": np.arange(m)})


def sample_coords(depth: int, m: int) -> dict[str, np.ndarray]:
    """Coordinates for layer (1..L) and the sample-label dims a1..a4 (0..m-1)."""
    labels = np.arange(m)
    return {"layer": np.arange(1, depth + 1), **{f"a{k}": labels for k in range(1, 5)}}


def with_provenance(ds: xr.Dataset, config: dict, seed: int | None = None) -> xr.Dataset:
    """Attach version, configuration (as JSON), seed and creation time to ``ds``."""
    from . import __version__

    ds.attrs["ntkit_version"] = __version__
    ds.attrs["config"] = json.dumps(config, sort_keys=True, default=_jsonable)
    if seed is not None:
        ds.attrs["seed"] = int(seed)
    ds.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return ds


def inputs_variable(x: np.ndarray) -> tuple:
    """The inputs x (m, n_0) as the data variable ``x`` on (a1, input_dim): exact and cheap, where
    the same numbers as JSON in ``config`` cost milliseconds (60 ms at m = 4096)."""
    return ("a1", "input_dim"), x, {"long_name": "network inputs"}


def config_of(ds: xr.Dataset) -> dict:
    """The configuration stored by :func:`with_provenance`."""
    return json.loads(ds.attrs.get("config", "{}"))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result's configuration")


def require_writable(path: str | os.PathLike, directory: bool = False) -> Path:
    """Check before a long computation that ``path`` (a file, or a ``directory``) can be written:
    its parent directories are created and a scratch file is made and removed there."""
    path = Path(path)
    where = path if directory else path.parent
    if not directory and path.is_dir():
        raise OSError(f"cannot write {path}: it is a directory")
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=where, prefix=".ntkit-write-check")
        os.close(fd)
        os.remove(scratch)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to netCDF-4 atomically (a scratch file beside ``path``, then a rename); returns the path.

    The scratch file is created by the netCDF library under the process's umask, so the result
    has the permissions of any other file the user writes (``tempfile.mkstemp`` would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a result written by :func:`save` fully into memory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no result file at {path}")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()
