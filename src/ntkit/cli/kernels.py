"""``ntkit kernels``: the infinite-width NNGP kernel K and NTK Theta of an MLP on a set of inputs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
import xarray as xr

from ..criticality import critical
from ..network import MLP
from ..results import save
from ..theory import MAX_FULL_SAMPLES, finite_width, infinite_width
from ._app import app
from ._console import console, fail, matrix_table, user_errors
from ._inputs import load_inputs


class Layers(str, Enum):
    all = "all"
    last = "last"


def build_mlp(activation: str, depth: int, c_b: Optional[float], c_w: Optional[float], use_critical: bool,
              lambda_b: float, lambda_w: float) -> MLP:
    """The MLP of the command-line options; ``--critical`` takes (c_b, c_w) from ``ntkit.critical``."""
    if use_critical:
        if c_b is not None or c_w is not None:
            fail("give either --critical or --c-b/--c-w, not both")
        c_b, c_w = critical(activation)
    return MLP(depth=depth, activation=activation, c_b=0.0 if c_b is None else c_b, c_w=1.0 if c_w is None else c_w,
               lambda_b=lambda_b, lambda_w=lambda_w)


def compute_kernels(mlp: MLP, x, layers: str, order: int = 0) -> xr.Dataset:
    """The result written and shown by ``ntkit kernels``: leading order, or with the 1/n statistics.

    Order 1 adds K1, theta1 and, for at most MAX_FULL_SAMPLES distinct inputs, V, D, F, A, B.
    """
    if order == 0:
        return infinite_width(mlp, x, layers=layers)
    tensors = "all" if len({tuple(row) for row in x}) <= MAX_FULL_SAMPLES else "mean"
    ds = finite_width(mlp, x, tensors=tensors)
    return ds.isel(layer=[-1]) if layers == "last" else ds


def show_last_layer(ds: xr.Dataset, mlp: MLP) -> None:
    layer = int(ds["layer"].values[-1])
    console.print(
        f"[bold]{mlp.activation.name}[/] MLP, depth {mlp.depth}, c_b = {mlp.c_b_at(layer):.8g}, "
        f"c_w = {mlp.c_w_at(layer):.8g}, lambda_b = {mlp.lambda_b_at(layer):.8g}, lambda_w = {mlp.lambda_w_at(layer):.8g}"
    )
    console.print(matrix_table(f"K (layer {layer}, infinite width)", ds["K"].values[-1]))
    console.print(matrix_table(f"theta (layer {layer}, infinite width)", ds["theta"].values[-1]))
    if "K1" in ds:
        console.print(matrix_table(f"K1 (layer {layer}): <z z> = K + K1/n", ds["K1"].values[-1]))
        console.print(matrix_table(f"theta1 (layer {layer}): <NTK> = theta + theta1/n", ds["theta1"].values[-1]))


@app.command()
def kernels(
    inputs: Optional[Path] = typer.Option(None, "--inputs", help="Inputs (m, n_0) as .npy or .csv; default: a built-in 4-input example."),
    activation: str = typer.Option("relu", help="Activation name, e.g. relu, gelu, tanh, leaky_relu(0.2)."),
    depth: int = typer.Option(3, help="Number of layers L (z^(L) is the output)."),
    c_b: Optional[float] = typer.Option(None, "--c-b", help="Bias variance C_b [default: 0]."),
    c_w: Optional[float] = typer.Option(None, "--c-w", help="Weight variance C_W (W ~ N(0, C_W / fan-in)) [default: 1]."),
    use_critical: bool = typer.Option(False, "--critical", help="Use the critical (C_b, C_W) of the activation."),
    lambda_b: float = typer.Option(1.0, "--lambda-b", help="Bias learning rate of the NTK."),
    lambda_w: float = typer.Option(1.0, "--lambda-w", help="Weight learning rate of the NTK (divided by fan-in)."),
    layers: Layers = typer.Option(Layers.all, help="Keep every layer, or only the last."),
    order: int = typer.Option(0, "--order", min=0, max=1, help="0: infinite width; 1: add the 1/n statistics K1, theta1, V, D, F, A, B."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the result (netCDF-4) here."),
) -> None:
    """Infinite-width NNGP kernel K and NTK theta, layer by layer; prints the last layer."""
    with user_errors():
        x = load_inputs(inputs)
        mlp = build_mlp(activation, depth, c_b, c_w, use_critical, lambda_b, lambda_w)
        ds = compute_kernels(mlp, x, layers.value, order)
        if out is not None:
            save(ds, out)
    show_last_layer(ds, mlp)
    if out is not None:
        console.print(f"wrote {out} (variables {', '.join(ds.data_vars)})")
