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
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..network import MLP, validate_inputs
from ..results import PAIR_DIMS, inputs_variable, with_provenance
from .tables import pair_rows

ROW_BLOCK = 256  # rows of a Gram matrix evaluated at once (bounds temporaries)
ALIGNMENT = 64  # bytes; jax.device_put shares (does not copy) numpy memory aligned like this
WHOLE_MATRIX_ENTRIES = 2**18  # up to m^2 this large, closed forms step whole matrices kept by JAX between layers

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


def _hyper(mlp: MLP, layer: int) -> tuple[float, float, float, float]:
    return mlp.c_b_at(layer), mlp.c_w_at(layer), mlp.lambda_b_at(layer), mlp.lambda_w_at(layer)


def _step_in_place(mlp: MLP, layer: int, K: np.ndarray, theta: np.ndarray, nodes) -> None:
    """K, Theta of layer - 1 -> of ``layer``, one block of rows at a time (bounded temporaries)."""
    hyper = _hyper(mlp, layer)
    rows_of = [slice(start, min(start + ROW_BLOCK, K.shape[0])) for start in range(0, K.shape[0], ROW_BLOCK)]
    kernel = mlp.activation.pair_kernel()
    if kernel is not None:  # closed form: the whole step in one compiled elementwise loop per block
        diag = np.diagonal(K).copy()
        for rows in rows_of:
            packed = np.asarray(_closed_form_rows(kernel, hyper, diag[rows], diag, jax.device_put(K[rows]), jax.device_put(theta[rows])))
            K[rows], theta[rows] = packed.real, packed.imag
        return
    c_b, c_w, l_b, l_w = hyper
    block = pair_rows(mlp.activation, K, nodes)
    for rows in rows_of:
        S, P = block(rows)
        theta[rows] = l_b + l_w * S + c_w * P * theta[rows]
        K[rows] = c_b + c_w * S


def _packed_step(kernel, hyper, diag_rows, diag, K_rows, theta_rows):
    """The recursion on a block of rows, S and P from the activation's closed form ``kernel``.

    Returns K + i Theta: with one output array XLA evaluates the closed form once per entry in a
    single loop (two outputs made it evaluate the shared arcsin twice).
    """
    c_b, c_w, l_b, l_w = hyper
    S, P = kernel(diag_rows[:, None], diag[None, :], K_rows)
    return jax.lax.complex(c_b + c_w * S, l_b + l_w * S + c_w * P * theta_rows)


_closed_form_rows = jax.jit(_packed_step, static_argnums=0)


@jax.jit
def _unpack(packed):
    """K + i Theta -> (K, Theta, diag K)."""
    return packed.real, packed.imag, jnp.diagonal(packed.real)


def _closed_form_layers(mlp: MLP, kernel, K: np.ndarray, theta: np.ndarray, keep: Sequence[int]) -> dict[int, np.ndarray]:
    """K + i Theta of the layers in ``keep`` (> 1) from layer-1 K, Theta, whole matrices at a time,
    kept by JAX between layers (for small m, where the per-block copies would dominate)."""
    K, theta = jax.device_put(K), jax.device_put(theta)
    diag = jnp.diagonal(K)
    kept = {}
    for layer in range(2, max(keep) + 1):
        packed = _closed_form_rows(kernel, _hyper(mlp, layer), diag, diag, K, theta)
        K, theta, diag = _unpack(packed)
        if layer in keep:
            kept[layer] = packed
    return {layer: np.asarray(packed) for layer, packed in kept.items()}


def _aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """``np.empty(shape)`` starting on an ALIGNMENT-byte boundary, so that blocks of its rows
    reach the compiled step without a copy."""
    size = int(np.prod(shape))
    buffer = np.empty(size + ALIGNMENT // 8)
    start = (-buffer.ctypes.data % ALIGNMENT) // 8
    return buffer[start : start + size].reshape(shape)


def infinite_width(mlp: MLP, x, layers: str | Sequence[int] = "all", nodes: int | None = None) -> xr.Dataset:
    """Infinite-width NNGP kernel ``K`` and NTK ``theta`` on dims (layer, a1, a2), float64.

    ``layers``: "all" (1..L), "last" (L only: the network's output, and the memory-lean choice
    for large Gram matrices: about 2 m^2 doubles are held), or a list of layer numbers. ``nodes``
    overrides the quadrature node count for activations without a closed form.
    """
    x = validate_inputs(x)
    order = sorted(_wanted_layers(layers, mlp.depth))
    m = x.shape[0]
    out_K, out_theta = _aligned_empty((len(order), m, m)), _aligned_empty((len(order), m, m))
    K, theta = out_K[-1], out_theta[-1]  # the working arrays end as the last kept layer
    np.matmul(x, x.T, out=K)  # layer 1 in place: no m x m temporaries
    K /= x.shape[1]
    np.multiply(K, mlp.lambda_w_at(1), out=theta)
    theta += mlp.lambda_b_at(1)
    K *= mlp.c_w_at(1)
    K += mlp.c_b_at(1)
    kernel = mlp.activation.pair_kernel()
    if kernel is not None and m * m <= WHOLE_MATRIX_ENTRIES and order[-1] > 1:
        kept = _closed_form_layers(mlp, kernel, K, theta, order)
        for i, layer in enumerate(order):  # layer 1 first: copied before the working arrays are overwritten
            if layer == 1 and len(order) > 1:
                out_K[i], out_theta[i] = K, theta
            elif layer > 1:
                out_K[i], out_theta[i] = kept[layer].real, kept[layer].imag
    else:
        for layer in range(1, order[-1] + 1):
            if layer > 1:
                _step_in_place(mlp, layer, K, theta, nodes)
            if layer in order[:-1]:
                i = order.index(layer)
                out_K[i], out_theta[i] = K, theta
    ds = xr.Dataset(
        {"K": (PAIR_DIMS, out_K), "theta": (PAIR_DIMS, out_theta), "x": inputs_variable(x)},
        coords={"layer": order, "a1": np.arange(m), "a2": np.arange(m)},
    )
    ds["K"].attrs["long_name"] = "NNGP kernel (infinite width)"
    ds["theta"].attrs["long_name"] = "NTK (infinite width)"
    return with_provenance(ds, {"kind": "infinite_width", "mlp": mlp.describe(), "layers": order})


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
