"""The network description shared by theory and sampling.

An ``MLP`` of depth L has preactivations (Roberts–Yaida–Hanin conventions)

    z^(1)_i   = b^(1)_i + sum_j W^(1)_ij x_j,
    z^(l+1)_i = b^(l+1)_i + sum_j W^(l+1)_ij sigma(z^(l)_j),

with b ~ N(0, c_b) and W^(l+1)_ij ~ N(0, c_w / n_l); z^(L) is the output. The NTK uses the
learning-rate tensor lambda_b for every bias and lambda_w / n_(l-1) for every weight of layer l.
``c_b``, ``c_w``, ``lambda_b`` and ``lambda_w`` are scalars or one value per layer (index 0 is
layer 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .activations import Activation, get_activation

__all__ = ["MLP", "hidden_widths", "is_integer", "read_inputs", "validate_inputs"]


def _per_layer(name: str, value, depth: int, *, allow_zero: bool) -> tuple[float, ...]:
    try:
        raw = np.atleast_1d(np.asarray(value))
    except ValueError:  # ragged
        raw = np.empty(0, dtype=object)
    if raw.dtype.kind not in "iuf":  # not bools, strings, None
        raise ValueError(f"{name} must be a number or a sequence of numbers (one per layer), got {value!r}")
    values = raw.astype(float)
    if values.ndim != 1 or values.size not in (1, depth):
        raise ValueError(f"{name} must be a scalar or a sequence of {depth} values (one per layer), got shape {np.shape(value)}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if allow_zero and np.any(values < 0):
        raise ValueError(f"{name} is a variance and must be >= 0, got {value!r}")
    if not allow_zero and np.any(values <= 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if values.size == 1:
        values = np.repeat(values, depth)
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class MLP:
    """A fully connected network at initialization: its depth, activation and hyperparameters.

    >>> mlp = MLP(depth=3, activation="relu", c_b=0.0, c_w=2.0)
    >>> mlp.c_w_at(2)
    2.0
    """

    depth: int
    activation: Activation | str | Callable = "relu"
    c_b: float | Sequence[float] = 0.0
    c_w: float | Sequence[float] = 1.0
    lambda_b: float | Sequence[float] = 1.0
    lambda_w: float | Sequence[float] = 1.0
    _c_b: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _c_w: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _lambda_b: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _lambda_w: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        object.__setattr__(self, "depth", int(self.depth))
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "_c_b", _per_layer("c_b", self.c_b, self.depth, allow_zero=True))
        object.__setattr__(self, "_c_w", _per_layer("c_w", self.c_w, self.depth, allow_zero=False))
        object.__setattr__(self, "_lambda_b", _per_layer("lambda_b", self.lambda_b, self.depth, allow_zero=True))
        object.__setattr__(self, "_lambda_w", _per_layer("lambda_w", self.lambda_w, self.depth, allow_zero=True))

    def c_b_at(self, layer: int) -> float:
        """Bias variance of layer ``layer`` (1..L)."""
        return self._c_b[self._index(layer)]

    def c_w_at(self, layer: int) -> float:
        """Weight variance (times fan-in) of layer ``layer`` (1..L)."""
        return self._c_w[self._index(layer)]

    def lambda_b_at(self, layer: int) -> float:
        return self._lambda_b[self._index(layer)]

    def lambda_w_at(self, layer: int) -> float:
        return self._lambda_w[self._index(layer)]

    def _index(self, layer: int) -> int:
        if not 1 <= layer <= self.depth:
            raise ValueError(f"layer must be in 1..{self.depth}, got {layer}")
        return layer - 1

    def describe(self) -> dict:
        """A flat, serialisable description (stored in every result's attributes)."""
        return {
            "depth": self.depth,
            "activation": self.activation.name,
            "c_b": list(self._c_b),
            "c_w": list(self._c_w),
            "lambda_b": list(self._lambda_b),
            "lambda_w": list(self._lambda_w),
        }


def validate_inputs(x, name: str = "x") -> np.ndarray:
    """Return ``x`` as a float64 array of shape (m, n_0), or raise a clear error."""
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (m, n_0): m inputs of dimension n_0; got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one input of dimension >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    return arr


def is_integer(value) -> bool:
    """A Python or numpy integer, and not a bool (``True`` is an int to Python, never a count to us)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def hidden_widths(width, depth: int) -> tuple[int, ...]:
    """Widths n_1..n_(L-1) of the hidden layers from an int (all equal) or a sequence."""
    if is_integer(width):
        widths = (int(width),) * (depth - 1)
    elif np.ndim(width) != 1:
        raise ValueError(f"widths must be a positive integer or a sequence of them, got {width!r}")
    else:
        widths = tuple(int(w) if isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(w, (bool, np.bool_))
                       and float(w).is_integer() else math.nan for w in width)
        if len(widths) != depth - 1:
            raise ValueError(f"widths must give {depth - 1} hidden widths n_1..n_{depth - 1}, got {len(widths)}")
    if any(not (isinstance(w, int) and w >= 1) for w in widths):
        raise ValueError(f"widths must be positive integers, got {width!r}")
    return widths


def read_inputs(path) -> np.ndarray:
    """Inputs (m, n_0) from a .npy array or a comma-separated .csv file (one input per row, no header)."""
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
