"""Input sets for the command line: .npy / .csv files, and the embedded example."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..network import read_inputs

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
    """Inputs (m, n_0) from a file (:func:`ntkit.network.read_inputs`), or the example inputs."""
    return EXAMPLE_INPUTS.copy() if path is None else read_inputs(path)
