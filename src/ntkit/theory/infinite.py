"""Infinite-width NNGP kernel K and NTK Theta, layer by layer (leading order of the theory spec).

    K^(1)_ab     = c_b + c_w x_a.x_b / n_0,          Theta^(1)_ab = lambda_b + lambda_w x_a.x_b / n_0,
    K^(l+1)_ab   = c_b + c_w <sigma_a sigma_b>_K(l),
    Theta^(l+1)_ab = lambda_b + lambda_w <sigma_a sigma_b>_K(l) + c_w <sigma'_a sigma'_b>_K(l) Theta^(l)_ab,

with the hyperparameters of layer l+1. In neural-tangents' NTK parameterization a ``Dense(W_std,
b_std)`` layer is the case c_w = lambda_w = W_std^2, c_b = lambda_b = b_std^2.
"""

from __future__ import annotations

from functools import partial
from typing import Iterator, Sequence

import jax
import numpy as np
import xarray as xr

from ..network import MLP, validate_inputs
from ..results import PAIR_DIMS, with_provenance
from .tables import pair_rows

ROW_BLOCK = 256  # rows of a Gram matrix evaluated at once (bounds temporaries)

__all__ = ["infinite_width", "layer_kernels", "input_kernels"]


def input_kernels(mlp: MLP, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Layer-1 K and Theta from the inputs x (m, n_0)."""
    gram = x @ x.T / x.shape[1]
    return mlp.c_b_at(1) + mlp.c_w_at(1) * gram, mlp.lambda_b_at(1) + mlp.lambda_w_at(1) * gram


def layer_kernels(mlp: MLP, x: np.ndarray, nodes: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (layer, K, Theta) for layers 1..L (fresh arrays for each layer)."""
    K, theta = input_kernels(mlp, x)
    yield 1, K, theta
    for layer in range(2, mlp.depth + 1):
        K, theta = K.copy(), theta.copy()
        _step_in_place(mlp, layer, K, theta, nodes)
        yield layer, K, theta


def _step_in_place(mlp: MLP, layer: int, K: np.ndarray, theta: np.ndarray, nodes) -> None:
    """K, Theta of layer - 1 -> of ``layer``, one block of rows at a time (bounded temporaries)."""
    hyper = (mlp.c_b_at(layer), mlp.c_w_at(layer), mlp.lambda_b_at(layer), mlp.lambda_w_at(layer))
    rows_of = [slice(start, min(start + ROW_BLOCK, K.shape[0])) for start in range(0, K.shape[0], ROW_BLOCK)]
    kernel = mlp.activation.pair_kernel()
    if kernel is not None:  # closed form: the whole step in one compiled elementwise loop per block
        diag = np.diagonal(K).copy()
        for rows in rows_of:
            K[rows], theta[rows] = _closed_form_rows(kernel, hyper, diag[rows], diag, K[rows], theta[rows])
        return
    c_b, c_w, l_b, l_w = hyper
    block = pair_rows(mlp.activation, K, nodes)
    for rows in rows_of:
        S, P = block(rows)
        theta[rows] = l_b + l_w * S + c_w * P * theta[rows]
        K[rows] = c_b + c_w * S


@partial(jax.jit, static_argnums=0)
def _closed_form_rows(kernel, hyper, diag_rows, diag, K_rows, theta_rows):
    """The recursion on a block of rows, S and P from the activation's closed form ``kernel``."""
    c_b, c_w, l_b, l_w = hyper
    S, P = kernel(diag_rows[:, None], diag[None, :], K_rows)
    return c_b + c_w * S, l_b + l_w * S + c_w * P * theta_rows


def infinite_width(mlp: MLP, x, layers: str | Sequence[int] = "all", nodes: int | None = None) -> xr.Dataset:
    """Infinite-width NNGP kernel ``K`` and NTK ``theta`` on dims (layer, a1, a2), float64.

    ``layers``: "all" (1..L), "last" (L only: the network's output, and the memory-lean choice
    for large Gram matrices: about 2 m^2 doubles are held), or a list of layer numbers. ``nodes``
    overrides the quadrature node count for activations without a closed form.
    """
    x = validate_inputs(x)
    order = sorted(_wanted_layers(layers, mlp.depth))
    m = x.shape[0]
    out_K, out_theta = np.empty((len(order), m, m)), np.empty((len(order), m, m))
    K, theta = out_K[-1], out_theta[-1]  # the working arrays end as the last kept layer
    np.matmul(x, x.T, out=K)  # layer 1 in place: no m x m temporaries
    K /= x.shape[1]
    np.multiply(K, mlp.lambda_w_at(1), out=theta)
    theta += mlp.lambda_b_at(1)
    K *= mlp.c_w_at(1)
    K += mlp.c_b_at(1)
    for layer in range(1, order[-1] + 1):
        if layer > 1:
            _step_in_place(mlp, layer, K, theta, nodes)
        if layer in order[:-1]:
            i = order.index(layer)
            out_K[i], out_theta[i] = K, theta
    ds = xr.Dataset(
        {"K": (PAIR_DIMS, out_K), "theta": (PAIR_DIMS, out_theta)},
        coords={"layer": order, "a1": np.arange(m), "a2": np.arange(m)},
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
