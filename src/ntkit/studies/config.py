"""The configuration of a width study: one flat, validated record, readable from TOML.

Every key of :class:`WidthStudyConfig` may appear at the top level of a TOML file; unknown keys,
bad values and missing files are refused by :func:`load_config` / :meth:`WidthStudyConfig.validated`
before any computation starts.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..activations import get_activation
from ..criticality import critical
from ..network import MLP, is_integer, read_inputs, validate_inputs

__all__ = ["WidthStudyConfig", "load_config", "INPUT_SETS", "DEMO_CONFIG"]

#: Named input sets (m, n_0). ``pair``: two unit-scale inputs at about 60 degrees with different
#: norms (the paper's setting of an off-diagonal entry); ``triple`` adds a third, longer one.
INPUT_SETS = {
    "pair": np.array([[1.0, 0.5, -1.2], [0.3, -0.8, 0.4]]),
    "triple": np.array([[1.0, 0.5, -1.2], [0.3, -0.8, 0.4], [1.6, 0.9, 0.1]]),
}


@dataclass(frozen=True)
class WidthStudyConfig:
    """What a width study computes.

    Network: ``activation``, ``c_b``/``c_w`` (numbers, or both ``"critical"``), ``lambda_b``,
    ``lambda_w``, ``depth``. Inputs: ``inputs`` (a name of :data:`INPUT_SETS`, a .npy/.csv path,
    or a list of rows). Monte Carlo: ``widths``, ``networks`` per width, ``seed``, ``workers``.
    Figures: ``entry`` = (a1, a2), the off-diagonal entry plotted, at layer ``depth``.
    Side studies: the diagonal theta correction for ``scale_activations`` at ``scale_width``, and
    the depth scan to ``scan_depth`` at criticality and at ``c_w * scan_off_factor``, sampled at
    ``scan_width`` with ``scan_networks`` networks (0 networks: theory only).
    """

    activation: str = "gelu"
    c_b: float | str = "critical"
    c_w: float | str = "critical"
    lambda_b: float = 1.0
    lambda_w: float = 1.0
    depth: int = 4
    inputs: str | list = "pair"
    widths: tuple[int, ...] = (8, 16, 32, 64, 128)
    networks: int = 20_000
    seed: int = 0
    workers: int = 1
    entry: tuple[int, int] = (0, 1)
    scale_activations: tuple[str, ...] = ("relu", "leaky_relu(0.2)", "gelu")
    scale_width: int = 32
    scale_networks: int = 20_000
    scan_depth: int = 50
    scan_width: int = 32
    scan_networks: int = 5_000
    scan_off_factor: float = 1.1
    output: str = "width_study"

    def validated(self) -> "WidthStudyConfig":
        """Self with tuples normalised, or ``ValueError`` naming the first bad key."""
        widths = tuple(_sequence("widths", self.widths))
        if not widths or not all(is_integer(w) and w >= 1 for w in widths):
            raise ValueError(f"widths must be a non-empty list of positive integers, got {list(self.widths)}")
        for key in ("networks", "scale_networks", "scan_networks"):
            value = getattr(self, key)
            if not is_integer(value) or value < (2 if key == "networks" else 0) or value == 1:
                raise ValueError(f"{key} must be an integer >= 2 (or 0 for theory only in side studies), got {value!r}")
        for key in ("depth", "scan_depth", "scale_width", "scan_width", "workers"):
            if not is_integer(getattr(self, key)) or getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        if not is_integer(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.depth < 2:
            raise ValueError("depth must be >= 2: layer 1 has no finite-width correction")
        if (self.c_b == "critical") != (self.c_w == "critical"):
            raise ValueError('c_b and c_w must both be "critical" or both numbers')
        if not (np.isfinite(self.scan_off_factor) and self.scan_off_factor > 0 and self.scan_off_factor != 1):
            raise ValueError(f"scan_off_factor must be positive and != 1, got {self.scan_off_factor}")
        for name in (self.activation, *_sequence("scale_activations", self.scale_activations)):
            get_activation(name)
        entry = tuple(_sequence("entry", self.entry))
        if not all(is_integer(a) for a in entry):
            raise ValueError(f"entry must be two integer input indices, got {list(self.entry)}")
        x = self.input_array()
        if len(entry) != 2 or not all(0 <= a < x.shape[0] for a in entry):
            raise ValueError(f"entry must be two input indices in 0..{x.shape[0] - 1}, got {list(self.entry)}")
        self.mlp()  # validates the hyperparameters
        return dataclasses.replace(self, widths=widths, entry=entry, scale_activations=tuple(self.scale_activations))

    def input_array(self) -> np.ndarray:
        if isinstance(self.inputs, str):
            if self.inputs in INPUT_SETS:
                return INPUT_SETS[self.inputs].copy()
            if not Path(self.inputs).is_file():
                raise FileNotFoundError(f"inputs: {self.inputs!r} is neither a named set ({', '.join(INPUT_SETS)}) nor a file")
            return read_inputs(self.inputs)
        return validate_inputs(np.asarray(self.inputs, dtype=float), name="inputs")

    def hyperparameters(self) -> tuple[float, float]:
        """(c_b, c_w): the configured numbers, or the critical point of the activation."""
        if self.c_b == "critical":
            point = critical(self.activation)
            return point.c_b, point.c_w
        return float(self.c_b), float(self.c_w)

    def mlp(self, depth: int | None = None, c_w_factor: float = 1.0) -> MLP:
        """The studied network (optionally deeper, or with C_W scaled off its value)."""
        c_b, c_w = self.hyperparameters()
        return MLP(depth=depth or self.depth, activation=self.activation, c_b=c_b, c_w=c_w * c_w_factor,
                   lambda_b=self.lambda_b, lambda_w=self.lambda_w)

    def critical_mlp(self, activation: str) -> MLP:
        """``activation`` at its own critical point, with the study's depth and learning rates."""
        point = critical(activation)
        return MLP(depth=self.depth, activation=activation, c_b=point.c_b, c_w=point.c_w,
                   lambda_b=self.lambda_b, lambda_w=self.lambda_w)

    def as_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


#: The embedded configuration of ``ntkit demo`` (about 4 minutes on 2 cores).
DEMO_CONFIG = WidthStudyConfig(output="ntkit_demo", scan_networks=2_000)


def load_config(path: str | Path | None = None, **overrides) -> WidthStudyConfig:
    """A validated config from a TOML file (top-level keys = field names) and keyword overrides."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(WidthStudyConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    return WidthStudyConfig(**values).validated()


def _sequence(key: str, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return list(value)


def _plain(value):
    if isinstance(value, tuple):
        return list(value)
    return value
