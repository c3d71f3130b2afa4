"""Checkpoints of a sampling run: the merged accumulator after a number of finished chunks.

Written as netCDF-4 (atomically, through :func:`ntkit.results.save`) with the run's configuration
as JSON; a checkpoint of a run with different arguments is refused, naming the differences.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from ..results import load, save
from .accumulator import Accumulator

__all__ = ["write_checkpoint", "read_checkpoint", "remove_checkpoints", "CheckpointMismatch"]


class CheckpointMismatch(ValueError):
    """The checkpoint file belongs to a run with different arguments."""


CHECKPOINT_KIND = "ntkit.sample checkpoint"


def write_checkpoint(path: Path, acc: Accumulator, chunks_done: int, config: dict) -> None:
    data = {name: ([f"{name}_{k}" for k in range(arr.ndim)], arr) for name, arr in acc.arrays().items()}
    ds = xr.Dataset(data)
    ds.attrs.update({"kind": CHECKPOINT_KIND, "config": json.dumps(config, sort_keys=True),
                     "chunks_done": int(chunks_done), "count": int(acc.count)})
    save(ds, path)


def read_checkpoint(path: Path, config: dict) -> tuple[Accumulator, int] | None:
    """The accumulator and number of finished chunks stored at ``path`` (None if there is no file)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        ds = load(path)
        stored = json.loads(ds.attrs["config"])
        chunks_done, count = int(ds.attrs["chunks_done"]), int(ds.attrs["count"])
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointMismatch(f"{path} is not an ntkit.sample checkpoint ({exc}); remove it or choose another path") from exc
    wanted = json.loads(json.dumps(config, sort_keys=True))
    if stored != wanted:
        differing = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise CheckpointMismatch(
            f"checkpoint {path} was written for different arguments (differs in: {', '.join(differing)}); "
            "rerun with the original arguments or remove the file"
        )
    acc = Accumulator.from_arrays(count, {name: ds[name].values for name in ds.data_vars})
    return acc, chunks_done


def remove_checkpoints(directory: Path) -> None:
    """Delete the sampling checkpoints in ``directory`` (files of any other kind stay), then the
    directory itself if that leaves it empty. For studies that have written their results."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in directory.glob("*.nc"):
        try:
            with xr.open_dataset(path, engine="netcdf4") as ds:
                ours = ds.attrs.get("kind") == CHECKPOINT_KIND
        except (OSError, ValueError):  # not netCDF: not ours
            ours = False
        if ours:
            path.unlink()
    if not any(directory.iterdir()):
        directory.rmdir()
