"""``ntkit kernels``: the infinite-width NNGP kernel K and NTK Theta of an MLP on a set of inputs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
import xarray as xr

from ..network import MLP
from ..results import require_writable, save
from ..theory import MAX_FULL_SAMPLES, finite_width, infinite_width
from ._app import app
from ._console import console, matrix_table, user_errors
from ._inputs import load_inputs
from ._network import CB, CW, Activation, Critical, Depth, Inputs, LambdaB, LambdaW, build_mlp


class Layers(str, Enum):
    all = "all"
    last = "last"


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
    inputs: Inputs = None,
    activation: Activation = "relu",
    depth: Depth = 3,
    c_b: CB = None,
    c_w: CW = None,
    use_critical: Critical = False,
    lambda_b: LambdaB = 1.0,
    lambda_w: LambdaW = 1.0,
    layers: Layers = typer.Option(Layers.all, help="Keep every layer, or only the last."),
    order: int = typer.Option(0, "--order", min=0, max=1, help="0: infinite width; 1: add the 1/n statistics K1, theta1, V, D, F, A, B."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the result (netCDF-4) here."),
) -> None:
    """Infinite-width NNGP kernel K and NTK theta, layer by layer; prints the last layer."""
    with user_errors():
        if out is not None:
            require_writable(out)
        x = load_inputs(inputs)
        mlp = build_mlp(activation, depth, c_b, c_w, use_critical, lambda_b, lambda_w)
        ds = compute_kernels(mlp, x, layers.value, order)
        if out is not None:
            save(ds, out)
    show_last_layer(ds, mlp)
    if out is not None:
        console.print(f"wrote {out} (variables {', '.join(ds.data_vars)})")
