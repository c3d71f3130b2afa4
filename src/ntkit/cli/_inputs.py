"""Input sets for the command line: .npy / .csv files, and the embedded example."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..network import validate_inputs

__all__ = ["EXAMPLE_INPUTS", "load_inputs"]

#: Four inputs in n_0 = 3 dimensions used when no ``--inputs`` file is given: a unit vector, one at
#: 60 degrees to it, an orthogonal one of norm 2, and the antipode of the first.
EXAMPLE_INPUTS = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.5, np.sqrt(3.0) / 2, 0.0],
        [0.0, 0.0, 2.0],
        [-1.0, 0.0, 0.0],
    ]
)


def load_inputs(path: Path | None) -> np.ndarray:
    """Inputs (m, n_0) from a .npy array or a comma-separated .csv file (one input per row, no header)."""
    if path is None:
        return EXAMPLE_INPUTS.copy()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no inputs file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path} is not a plain numeric .npy array: {exc}") from exc
    elif suffix == ".csv":
        try:
            data = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path} is not a numeric CSV file (one input per row, no header): {exc}") from exc
    else:
        raise ValueError(f"inputs must be a .npy or .csv file, got {path.name}")
    return validate_inputs(data, name=f"inputs in {path.name}")
