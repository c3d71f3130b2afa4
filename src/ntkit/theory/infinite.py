"""Infinite-width NNGP kernel K and NTK Theta, layer by layer (leading order of the theory spec).

    K^(1)_ab     = c_b + c_w x_a.x_b / n_0,          Theta^(1)_ab = lambda_b + lambda_w x_a.x_b / n_0,
    K^(l+1)_ab   = c_b + c_w <sigma_a sigma_b>_K(l),
    Theta^(l+1)_ab = lambda_b + lambda_w <sigma_a sigma_b>_K(l) + c_w <sigma'_a sigma'_b>_K(l) Theta^(l)_ab,

with the hyperparameters of layer l+1. In neural-tangents' NTK parameterization a ``Dense(W_std,
b_std)`` layer is the case c_w = lambda_w = W_std^2, c_b = lambda_b = b_std^2.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..network import MLP, is_integer, validate_inputs
from ..results import PAIR_DIMS, inputs_variable, pair_coordinates, with_provenance
from .tables import pair_rows

ROW_BLOCK = 256  # rows of a Gram matrix evaluated at once (bounds temporaries)
MIRROR_TILE = 32  # side of the squares in which an upper triangle is transposed into the lower
SUMMED_GRAM_DIMS = 32  # up to this input dimension the input Gram is summed term by term, beyond it by BLAS
ALIGNMENT = 64  # bytes; jax.device_put shares (does not copy) numpy memory aligned like this
WHOLE_MATRIX_ENTRIES = 2**16  # up to m^2 this large (m = 256), closed forms step whole matrices in JAX; beyond,
# the upper triangle in blocks of rows is faster (gelu, depth 4: m = 512 6.1 -> 4.2 ms, 2048 135 -> 64 ms)
MIN_NODES = 8  # fewest quadrature nodes per dimension a caller may ask for (the defaults are 28..800)
LANES = 8  # compiled Gram steps see rows padded to a multiple of this many columns (see _padded_columns)

__all__ = ["infinite_width", "layer_kernels"]


def layer_kernels(mlp: MLP, x: np.ndarray, nodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K and Theta of layers 1..L for validated inputs x (m, n_0), each of shape (L, m, m)."""
    return _kernels(mlp, x, list(range(1, mlp.depth + 1)), nodes)


def _hyper(mlp: MLP, layer: int) -> tuple[float, float, float, float]:
    return mlp.c_b_at(layer), mlp.c_w_at(layer), mlp.lambda_b_at(layer), mlp.lambda_w_at(layer)


def _kernels(mlp: MLP, x: np.ndarray, order: list[int], nodes) -> tuple[np.ndarray, np.ndarray]:
    """K and Theta of the layers in ``order`` (sorted), each of shape (len(order), m, m).

    Every path starts from the input Gram G = x x^T / n_0 (:func:`_input_gram_into`); closed forms
    keep it in JAX (whole matrices for small m, blocks of the upper triangle for large m),
    quadrature in the last kept layer's arrays, which are the working arrays. Layer 1 is
    (c_b + c_w G, lambda_b + lambda_w G). Raises if a kernel overflows.
    """
    if nodes is not None and (not is_integer(nodes) or nodes < MIN_NODES):
        raise ValueError(f"nodes (quadrature nodes per dimension) must be None (the defaults) or an integer >= {MIN_NODES}, got {nodes!r}")
    m = x.shape[0]
    # one allocation for both: from 4 MiB on numpy asks the kernel for transparent huge pages, whose
    # first touch costs ~5x less than that of 4 KiB pages (N = 256, L = 4: 1.06 -> 0.21 ms)
    out_K, out_theta = _aligned_empty((2, len(order), m, m))
    _layers_into(mlp, x, order, nodes, out_K, out_theta)
    _require_finite(out_K, out_theta, order)
    return out_K, out_theta


def _layers_into(mlp: MLP, x: np.ndarray, order: list[int], nodes, out_K: np.ndarray, out_theta: np.ndarray) -> None:
    """The kept layers into ``out_K``, ``out_theta``, by the path that suits the activation and m."""
    kernel = mlp.activation.pair_kernel()
    if kernel is not None and x.shape[0] ** 2 <= WHOLE_MATRIX_ENTRIES:
        _whole_matrix_layers(mlp, kernel, order, _input_gram(x), out_K, out_theta)
        return
    if kernel is not None:
        _upper_block_layers(mlp, kernel, order, x, out_K, out_theta)
        return
    gram = out_K[-1]
    _input_gram_into(x, gram)
    if len(order) > 1 and order[0] == 1:
        _layer_one_into(mlp, gram, out_K[0], out_theta[0])
    _layer_one_into(mlp, gram, gram, out_theta[-1])  # theta first: K overwrites the Gram
    if order[-1] > 1:
        _numerical_layers(mlp, order, out_K, out_theta, nodes)


def _input_gram_into(x: np.ndarray, gram: np.ndarray) -> None:
    """G = x x^T / n_0 of inputs x (m, n_0), written into ``gram``: exactly symmetric, with equal
    rows for equal inputs and opposite rows for opposite ones (the arc-cosine kernel needs these
    at correlations of exactly +-1).

    Up to SUMMED_GRAM_DIMS input dimensions every entry is summed term by term in the same order
    (:func:`_summed_gram_rows`), which for so few terms is 2-4x faster than BLAS; beyond, BLAS
    syrk computes one triangle and mirrors it (a general matrix product, or XLA's dot, sums
    different entries in different orders: neither symmetric nor equal on equal inputs).
    """
    n_0 = x.shape[1]
    if n_0 > SUMMED_GRAM_DIMS:
        np.matmul(x, x.T, out=gram)
        gram /= n_0
        return
    inputs, columns = jax.device_put(x), jax.device_put(_padded_columns(x.T).T)
    for start in range(0, x.shape[0], ROW_BLOCK):
        rows = slice(start, start + ROW_BLOCK)
        gram[rows] = np.asarray(_summed_gram_rows(inputs[rows], columns))[:, : x.shape[0]]


def _padded_columns(a):
    """``a`` (..., m) with its last column repeated up to a multiple of LANES columns (numpy or traced).

    XLA's CPU loops run the last axis in vector lanes and a scalar remainder, and may contract
    a * b + c into one fused multiply-add in one but not the other: entry (a, b) and its mirror
    (b, a), computed in different loops, would differ in the last bit. With no remainder every
    entry is computed alike, and the Grams stay exactly symmetric.
    """
    xp = jnp if isinstance(a, jax.Array) else np
    pad = -a.shape[-1] % LANES
    return a if pad == 0 else xp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, pad)], mode="edge")


def _input_gram(x: np.ndarray) -> jax.Array:
    """G = x x^T / n_0 as a JAX array (m, columns padded by :func:`_padded_columns`), with the
    guarantees of :func:`_input_gram_into`."""
    if x.shape[1] > SUMMED_GRAM_DIMS:
        gram = _aligned_empty((x.shape[0], x.shape[0]))
        _input_gram_into(x, gram)
        return jax.device_put(_padded_columns(gram))
    return _summed_gram_rows(jax.device_put(x), jax.device_put(_padded_columns(x.T).T))


@jax.jit
def _summed_gram_rows(x_rows, x):
    """x_rows x^T / n_0 as sum_k x_rows[:, k] x[:, k]^T, k = 0, 1, ... in order: each entry is
    the same sequence of products (commutative) and sums, whichever row and column it is in."""
    gram = x_rows[:, None, 0] * x[None, :, 0]
    for k in range(1, x.shape[1]):
        gram = gram + x_rows[:, None, k] * x[None, :, k]
    return gram / x.shape[1]


def _layer_one_into(mlp: MLP, gram: np.ndarray, K: np.ndarray, theta: np.ndarray) -> None:
    """K = c_b + c_w G and Theta = lambda_b + lambda_w G of layer 1, written in place (K may be G itself)."""
    c_b, c_w, l_b, l_w = _hyper(mlp, 1)
    np.multiply(gram, l_w, out=theta)
    theta += l_b
    np.multiply(gram, c_w, out=K)
    K += c_b


def _numerical_layers(mlp: MLP, order: list[int], out_K: np.ndarray, out_theta: np.ndarray, nodes) -> None:
    """Layers 2.. from layer 1 in the working arrays, by ``pair_rows`` (quadrature or Mehler series)."""
    K, theta = out_K[-1], out_theta[-1]
    for layer in range(2, order[-1] + 1):
        c_b, c_w, l_b, l_w = _hyper(mlp, layer)
        block = pair_rows(mlp.activation, K, nodes)
        for start in range(0, K.shape[0], ROW_BLOCK):
            rows = slice(start, min(start + ROW_BLOCK, K.shape[0]))
            S, P = block(rows)
            theta[rows] = l_b + l_w * S + c_w * P * theta[rows]
            K[rows] = c_b + c_w * S
        _require_finite_layer(K, theta, layer)  # before the next layer's quadrature sees it
        if layer in order[:-1]:
            out_K[order.index(layer)], out_theta[order.index(layer)] = K, theta


def _packed_step(kernel, hyper, diag_rows, diag, K_rows, theta_rows):
    """The recursion on a block of rows, S and P from the activation's closed form ``kernel``.

    Returns K + i Theta: with one output array XLA evaluates the closed form once per entry in a
    single loop (two outputs made it evaluate the shared arcsin twice).
    """
    c_b, c_w, l_b, l_w = hyper
    S, P = kernel(diag_rows[:, None], diag[None, :], K_rows)
    return jax.lax.complex(c_b + c_w * S, l_b + l_w * S + c_w * P * theta_rows)


def _step_from_gram(kernel, hyper_1, hyper, gram_diag_rows, gram_diag, gram_rows):
    """Layer 2 from rows of the input Gram G: layer 1 (c_b + c_w G, lambda_b + lambda_w G) is
    formed on the fly, on the diagonal by the same expression as on the rows."""
    c_b, c_w, l_b, l_w = hyper_1
    return _packed_step(kernel, hyper, c_b + c_w * gram_diag_rows, c_b + c_w * gram_diag, c_b + c_w * gram_rows, l_b + l_w * gram_rows)


def _layer_one(hyper, gram):
    """Layer 1 as K + i Theta from the input Gram."""
    c_b, c_w, l_b, l_w = hyper
    return jax.lax.complex(c_b + c_w * gram, l_b + l_w * gram)


def _second_layer(kernel, hyper_1, hyper, gram):
    """Layer 2 as K + i Theta from the whole input Gram (columns padded)."""
    diag = jnp.diagonal(gram)
    return _step_from_gram(kernel, hyper_1, hyper, diag, _padded_columns(diag), gram)


def _next_layer(kernel, hyper, packed):
    """The next layer's K + i Theta from this layer's, whole matrices (columns padded)."""
    diag = jnp.diagonal(packed.real)
    return _packed_step(kernel, hyper, diag, _padded_columns(diag), packed.real, packed.imag)


# Hyperparameters are traced (a scan over c_w compiles once); the closed form is static.
_rows_from_gram = jax.jit(_step_from_gram, static_argnums=0)
_whole_layer_one = jax.jit(_layer_one)
_whole_second = jax.jit(_second_layer, static_argnums=0)
_whole_next = jax.jit(_next_layer, static_argnums=0, donate_argnums=2)  # in place


def _whole_matrix_layers(mlp: MLP, kernel, order: list[int], gram: jax.Array, out_K: np.ndarray, out_theta: np.ndarray) -> None:
    """All layers from the input Gram, whole matrices K + i Theta kept by JAX and stepped in place
    (m^2 <= WHOLE_MATRIX_ENTRIES: the working K + i Theta, 2 m^2 doubles, are held besides the
    outputs), their columns padded by :func:`_padded_columns`."""
    m = gram.shape[0]
    first = 1 if order[0] == 1 else 2  # layer 1 only formed as a matrix when it is kept
    packed = _whole_layer_one(_hyper(mlp, 1), gram) if first == 1 else _whole_second(kernel, _hyper(mlp, 1), _hyper(mlp, 2), gram)
    for layer in range(first, order[-1] + 1):
        if layer > first:
            packed = _whole_next(kernel, _hyper(mlp, layer), packed)
        if layer in order:
            i = order.index(layer)
            values = np.asarray(packed)[:, :m]  # a view: deleted so that the next step can reuse the buffer
            out_K[i], out_theta[i] = values.real, values.imag
            del values


def _upper_block_layers(mlp: MLP, kernel, order: list[int], x: np.ndarray, out_K: np.ndarray, out_theta: np.ndarray) -> None:
    """Every layer from the inputs on the upper triangle only (large m, closed forms).

    Each entry of a layer depends on the same entry and the diagonal of the layer before, so the
    Grams are computed on blocks of ROW_BLOCK rows from their diagonal to the last column, half
    the entries. The blocks stay in JAX as K + i Theta between layers (:func:`_packed_step`);
    only kept layers are copied out, each block with its mirror image below it (exactly
    symmetric). Besides the outputs about m^2 doubles (the triangle as complex) are held. At
    m = 4096, depth 4, this took the last layer's Grams from ~430 ms to ~270 ms (relu, erf, gelu
    alike: the row-by-row numpy copies between layers had cost as much as the closed forms).
    """
    m = x.shape[0]
    starts = range(0, m, ROW_BLOCK)
    if x.shape[1] > SUMMED_GRAM_DIMS:  # BLAS Gram (see _input_gram_into) in the last output, read block by block
        _input_gram_into(x, out_K[-1])
        blocks = [jax.device_put(_padded_columns(out_K[-1][s : s + ROW_BLOCK, s:])) for s in starts]
    else:
        columns = _padded_columns(x.T).T
        blocks = [_summed_gram_rows(x[s : s + ROW_BLOCK], columns[s:]) for s in starts]
    hyper_1 = _hyper(mlp, 1)
    if order[0] == 1:
        for s, gram in zip(starts, blocks):
            _keep_block(_whole_layer_one(hyper_1, gram), s, out_K[0], out_theta[0])
    for layer in range(2, order[-1] + 1):
        hyper = _hyper(mlp, layer)
        diag = np.asarray(_upper_diagonal(blocks))
        columns = _padded_columns(diag)
        for k, s in enumerate(starts):
            rows = slice(s, s + ROW_BLOCK)
            if layer == 2:
                blocks[k] = _rows_from_gram(kernel, hyper_1, hyper, diag[rows], columns[s:], blocks[k])
            else:
                blocks[k] = _upper_rows(kernel, hyper, diag[rows], columns[s:], blocks[k])
        if layer in order:  # after every block is dispatched: copying one overlaps computing the next
            for s, block in zip(starts, blocks):
                _keep_block(block, s, out_K[order.index(layer)], out_theta[order.index(layer)])


def _upper_step(kernel, hyper, diag_rows, diag_columns, packed):
    """:func:`_packed_step` on a block of K + i Theta."""
    return _packed_step(kernel, hyper, diag_rows, diag_columns, packed.real, packed.imag)


_upper_rows = jax.jit(_upper_step, static_argnums=0, donate_argnums=4)


@jax.jit
def _upper_diagonal(blocks: list) -> jax.Array:
    """The diagonal of a Gram (of K if the blocks are K + i Theta) from its upper blocks (each
    block's first columns are its rows')."""
    return jnp.concatenate([jnp.diagonal(jnp.real(block[:, : block.shape[0]])) for block in blocks])


def _keep_block(packed: jax.Array, start: int, K: np.ndarray, theta: np.ndarray) -> None:
    """Rows start.. of K and Theta from a block of K + i Theta (columns start..m) and, by mirror
    image, columns start.. below the block: exactly symmetric Grams. The mirror is copied in
    MIRROR_TILE squares, which stay in the first-level cache (m = 4096, depth 4: mirroring in
    256-squares added ~80 ms to the last layer, in 32-squares ~40 ms)."""
    values = np.asarray(packed)
    rows, end = values.shape[0], K.shape[1]
    for out, part in ((K, values.real), (theta, values.imag)):
        out[start : start + rows, start:] = part[:, : end - start]
        for c in range(start + rows, end, MIRROR_TILE):
            for r in range(start, start + rows, MIRROR_TILE):
                r_end = min(r + MIRROR_TILE, start + rows)
                out[c : c + MIRROR_TILE, r:r_end] = out[r:r_end, c : c + MIRROR_TILE].T


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
    for large Gram matrices: beyond m = 256 closed forms hold about 3 m^2 doubles, the outputs
    and a working upper triangle), or a list of layer numbers. ``nodes`` overrides the
    quadrature node count for activations without a closed form.
    """
    x = validate_inputs(x)
    order = sorted(_wanted_layers(layers, mlp.depth))
    out_K, out_theta = _kernels(mlp, x, order, nodes)
    ds = xr.Dataset(
        {"K": (PAIR_DIMS, out_K, {"long_name": "NNGP kernel (infinite width)"}),
         "theta": (PAIR_DIMS, out_theta, {"long_name": "NTK (infinite width)"}), "x": inputs_variable(x)},
        coords=pair_coordinates(tuple(order), x.shape[0]),
    )
    return with_provenance(ds, {"kind": "infinite_width", "mlp": mlp.describe(), "layers": order})


def _require_finite(out_K: np.ndarray, out_theta: np.ndarray, order: list[int]) -> None:
    """Raise if a kernel overflowed. Checking the diagonals suffices: |K_ab| <= sqrt(K_aa K_bb)."""
    for i, layer in enumerate(order):
        _require_finite_layer(out_K[i], out_theta[i], layer)


def _require_finite_layer(K: np.ndarray, theta: np.ndarray, layer: int) -> None:
    """Raise naming the layer and the cause if a diagonal of K or Theta is NaN or inf."""
    for name, values in (("K", K), ("theta", theta)):
        diagonal = np.diagonal(values)
        if np.any(np.isnan(diagonal)):
            raise ValueError(f"{name} of layer {layer} is NaN: the activation is not finite on some preactivations "
                             "(e.g. log of a negative number), or a kernel overflowed")
        if not np.all(np.isfinite(diagonal)):
            raise ValueError(f"{name} of layer {layer} overflows float64: scale down the inputs or the hyperparameters")


def _wanted_layers(layers, depth: int) -> set[int]:
    if isinstance(layers, str):
        if layers == "all":
            return set(range(1, depth + 1))
        if layers == "last":
            return {depth}
        raise ValueError(f"layers must be 'all', 'last' or a list of layer numbers, got {layers!r}")
    layers = [layers] if np.ndim(layers) == 0 else layers
    if not all(is_integer(l) for l in layers):
        raise ValueError(f"layers must be 'all', 'last' or integer layer numbers, got {layers!r}")
    wanted = {int(l) for l in layers}
    bad = sorted(l for l in wanted if not 1 <= l <= depth)
    if bad or not wanted:
        raise ValueError(f"layers must be within 1..{depth}, got {list(layers)!r}")
    return wanted
