"""The command-line description of a network and its inputs, shared by ``ntkit kernels`` and ``ntkit sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..criticality import critical
from ..network import MLP
from ._console import fail

__all__ = ["Activation", "CB", "CW", "Critical", "Depth", "Inputs", "LambdaB", "LambdaW", "build_mlp"]

Inputs = Annotated[Optional[Path], typer.Option("--inputs", help="Inputs (m, n_0) as .npy or .csv; default: a built-in 4-input example.")]
Activation = Annotated[str, typer.Option(help="Activation name, e.g. relu, gelu, tanh, leaky_relu(0.2).")]
Depth = Annotated[int, typer.Option(help="Number of layers L (z^(L) is the output).")]
CB = Annotated[Optional[float], typer.Option("--c-b", help="Bias variance C_b (default 0).")]
CW = Annotated[Optional[float], typer.Option("--c-w", help="Weight variance C_W, W ~ N(0, C_W / fan-in) (default 1).")]
Critical = Annotated[bool, typer.Option("--critical", help="Use the critical (C_b, C_W) of the activation.")]
LambdaB = Annotated[float, typer.Option("--lambda-b", help="Bias learning rate of the NTK.")]
LambdaW = Annotated[float, typer.Option("--lambda-w", help="Weight learning rate of the NTK (divided by fan-in).")]


def build_mlp(activation: str, depth: int, c_b: Optional[float], c_w: Optional[float], use_critical: bool,
              lambda_b: float, lambda_w: float) -> MLP:
    """The MLP of the command-line options; ``--critical`` takes (c_b, c_w) from ``ntkit.critical``."""
    if use_critical:
        if c_b is not None or c_w is not None:
            fail("give either --critical or --c-b/--c-w, not both")
        c_b, c_w = critical(activation)
    return MLP(depth=depth, activation=activation, c_b=0.0 if c_b is None else c_b, c_w=1.0 if c_w is None else c_w,
               lambda_b=lambda_b, lambda_w=lambda_w)
