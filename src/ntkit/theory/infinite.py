"""Infinite-width NNGP kernel K and NTK Theta, layer by layer (leading order of the theory spec).

    K^(1)_ab     = c_b + c_w x_a.x_b / n_0,          Theta^(1)_ab = lambda_b + lambda_w x_a.x_b / n_0,
    K^(l+1)_ab   = c_b + c_w <sigma_a sigma_b>_K(l),
    Theta^(l+1)_ab = lambda_b + lambda_w <sigma_a sigma_b>_K(l) + c_w <sigma'_a sigma'_b>_K(l) Theta^(l)_ab,

with the hyperparameters of layer l+1. In neural-tangents' NTK parameterization a ``Dense(W_std,
b_std)`` layer is the case c_w = lambda_w = W_std^2, c_b = lambda_b = b_std^2.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import xarray as xr

from ..network import MLP, validate_inputs
from ..results import PAIR_DIMS, with_provenance
from .tables import two_point

__all__ = ["infinite_width", "layer_kernels", "input_kernels"]


def input_kernels(mlp: MLP, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Layer-1 K and Theta from the inputs x (m, n_0)."""
    gram = x @ x.T / x.shape[1]
    return mlp.c_b_at(1) + mlp.c_w_at(1) * gram, mlp.lambda_b_at(1) + mlp.lambda_w_at(1) * gram


def layer_kernels(mlp: MLP, x: np.ndarray, nodes: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (layer, K, Theta) for layers 1..L, holding only one layer in memory."""
    K, theta = input_kernels(mlp, x)
    yield 1, K, theta
    for layer in range(2, mlp.depth + 1):
        S, P = two_point(mlp.activation, K, nodes=nodes)
        theta = mlp.lambda_b_at(layer) + mlp.lambda_w_at(layer) * S + mlp.c_w_at(layer) * P * theta
        K = mlp.c_b_at(layer) + mlp.c_w_at(layer) * S
        del S, P
        yield layer, K, theta


def infinite_width(mlp: MLP, x, layers: str | Sequence[int] = "all", nodes: int | None = None) -> xr.Dataset:
    """Infinite-width NNGP kernel ``K`` and NTK ``theta`` on dims (layer, a1, a2), float64.

    ``layers``: "all" (1..L), "last" (L only: the network's output, and the memory-lean choice
    for large Gram matrices), or a list of layer numbers. ``nodes`` overrides the quadrature
    node count for activations without a closed form.
    """
    x = validate_inputs(x)
    wanted = _wanted_layers(layers, mlp.depth)
    kept = {}
    for layer, K, theta in layer_kernels(mlp, x, nodes=nodes):
        if layer in wanted:
            kept[layer] = (K, theta)
    order = sorted(kept)
    ds = xr.Dataset(
        {
            "K": (PAIR_DIMS, np.stack([kept[l][0] for l in order])),
            "theta": (PAIR_DIMS, np.stack([kept[l][1] for l in order])),
        },
        coords={"layer": order, "a1": np.arange(x.shape[0]), "a2": np.arange(x.shape[0])},
    )
    ds["K"].attrs["long_name"] = "NNGP kernel (infinite width)"
    ds["theta"].attrs["long_name"] = "NTK (infinite width)"
    return with_provenance(ds, {"kind": "infinite_width", "mlp": mlp.describe(), "x": x, "layers": order})


def _wanted_layers(layers, depth: int) -> set[int]:
    if isinstance(layers, str):
        if layers == "all":
            return set(range(1, depth + 1))
        if layers == "last":
            return {depth}
        raise ValueError(f"layers must be 'all', 'last' or a list of layer numbers, got {layers!r}")
    wanted = {int(l) for l in layers}
    bad = sorted(l for l in wanted if not 1 <= l <= depth)
    if bad or not wanted:
        raise ValueError(f"layers must be within 1..{depth}, got {list(layers)!r}")
    return wanted
