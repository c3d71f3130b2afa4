"""First-order (1/n) statistics of a random MLP, layer by layer (theory spec §3 of both files).

Per layer l the statistics of z^(l) and of the NTK are, with n = n_(l-1) the layer's fan-in,

    E[z z]      = K + K1/n,        E[Theta_hat] = Theta + theta1/n,
    V/n, D/n, F/n, A/n, B/n        the connected four-point statistics (slot orders of the spec).

The recursion from l to l+1 (hyperparameters of layer l+1, r = n_l / n_(l-1) multiplying only
inherited terms, tables of ``layer_tables`` at K^(l)) is implemented by :func:`first_order_step`
with dense einsums over a trailing batch axis (each table entry a contiguous vector over the
batch, which XLA's fused loops vectorize). The same step serves

* the full tensors on all m (distinct) inputs: batch 1, P = m;
* the fast mean path: every pair of inputs as its own 2-sample problem (P = 2, the batch a tile
  of pairs of the Gram matrix), because the recursions close on any subset of samples; K1 and
  theta1 need nothing else. There every tensor is an object array (2, ..., 2) of arrays over the
  tile, written out entry by entry with symmetric entries shared (:func:`_pair_step`).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import warnings
from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..network import MLP, hidden_widths, validate_inputs
from ..results import PAIR_DIMS, QUAD_DIMS, config_of, inputs_variable, with_provenance
from .infinite import layer_kernels
from .layer_tables import LayerTables, layer_tables
from .pair_tables import PairTables, Tile, correlation, dense, entries, pair_layer_tables
from .tables import EXACT_COLLINEAR, KINK_ACCURATE, collinear_pairs, gram_collinearity

__all__ = ["NearlyCollinearWarning", "FirstOrderState", "first_order_step", "finite_width", "at_width", "MAX_FULL_SAMPLES"]

MAX_FULL_SAMPLES = 16  # the full four-sample tensors hold m^4 entries per layer and cost ~m^6
MEAN_TILE = 96  # the mean path advances squares of about this side of the Gram matrix together (a tile's tables stay in cache)
TILES_PER_CALL = 4  # tile steps compiled into one call, which XLA runs concurrently on the cores (2 cores: 1.45 -> 1.2 s for m = 1000)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class FirstOrderState:
    """Statistics of one layer, batched: pair arrays (P, P, batch), four-sample arrays (P, P, P, P, batch)."""

    K: np.ndarray
    theta: np.ndarray
    K1: np.ndarray
    theta1: np.ndarray
    V: np.ndarray
    D: np.ndarray
    F: np.ndarray
    A: np.ndarray
    B: np.ndarray


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class _Hyper:
    c_b: float
    c_w: float
    lambda_b: float
    lambda_w: float


def _einsum(subscripts: str, *operands):
    """``jnp.einsum``, unrolled into broadcast products when the summed indices take <= 16 values.

    The mean path's 2-sample problems contract indices of size 2 over a long batch axis, where
    XLA's batched dot of tiny matrices is 3-6x slower than one fused sum of products. Operands
    that are object arrays of vectors (the batch axis z inside each entry) are contracted entry
    by entry (:func:`_entry_einsum`).
    """
    if any(isinstance(op, np.ndarray) and op.dtype == object for op in operands):
        return _entry_einsum(subscripts.replace("z", ""), *operands)
    ins, out = subscripts.split("->")
    ins = ins.split(",")
    sizes = {letter: op.shape[i] for spec, op in zip(ins, operands) for i, letter in enumerate(spec)}
    summed = sorted(set("".join(ins)) - set(out))
    if math.prod(sizes[letter] for letter in summed) > 16:
        return jnp.einsum(subscripts, *operands)
    total = 0.0
    for values in itertools.product(*(range(sizes[letter]) for letter in summed)):
        fixed = dict(zip(summed, values))
        term = 1.0
        for spec, op in zip(ins, operands):
            kept = [letter for letter in spec if letter not in fixed]
            part = op[tuple(fixed.get(letter, slice(None)) for letter in spec)]
            part = jnp.transpose(part, sorted(range(len(kept)), key=lambda i: out.index(kept[i])))
            term = term * part.reshape([sizes[letter] if letter in kept else 1 for letter in out])
        total = total + term
    return jnp.broadcast_to(total, [sizes[letter] for letter in out])


def _entry_einsum(subscripts: str, *operands) -> np.ndarray:
    """Einsum of object arrays whose entries are (pairs,) vectors or structural zeros (Python 0.0,
    whose terms are left out), written out entry by entry."""
    ins, out = subscripts.split("->")
    ins = ins.split(",")
    sizes = {letter: op.shape[i] for spec, op in zip(ins, operands) for i, letter in enumerate(spec)}
    summed = sorted(set("".join(ins)) - set(out))
    result = np.empty([sizes[letter] for letter in out], dtype=object)
    for out_idx in itertools.product(*(range(sizes[letter]) for letter in out)):
        fixed = dict(zip(out, out_idx))
        terms = []
        for values in itertools.product(*(range(sizes[letter]) for letter in summed)):
            fixed.update(zip(summed, values))
            factors = [op[tuple(fixed[letter] for letter in spec)] for spec, op in zip(ins, operands)]
            if not any(_is_zero(f) for f in factors):
                terms.append(functools.reduce(operator.mul, factors))
        result[out_idx] = functools.reduce(operator.add, terms) if terms else 0.0
    return result


def _is_zero(entry) -> bool:
    return isinstance(entry, float) and entry == 0.0


def first_order_step(state: FirstOrderState, tab: LayerTables, h: _Hyper, r: float, K_next, theta_next, fluctuations: bool = True) -> FirstOrderState:
    """One layer of the first-order recursions (first-order-mean.md §3, first-order-fluctuations.md §3).

    ``K_next``/``theta_next`` are the leading-order kernels of layer l+1 (from the infinite-width
    recursion). ``fluctuations=False`` skips the NTK variance tensors A and B (``None``), which
    K1, theta1, V, D and F never use.
    """
    cw, lw = h.c_w, h.lambda_w
    S, P, th = tab.S, tab.P, state.theta
    V, D, F, A = state.V, state.D, state.F, state.A

    # inherited contractions (all O(1/n_(l-1)), carry r)
    A2_V = _einsum("abijz,ijklz->abklz", tab.A2, V)
    AVA = _einsum("abklz,cdklz->abcdz", A2_V, tab.A2)
    AVB = _einsum("abklz,cdklz->abcdz", A2_V, tab.B2)
    A2_D = _einsum("abijz,ijcdz->abcdz", tab.A2, D)
    fourth_V = _einsum("abijklz,ijklz->abz", tab.A4, V)
    B4_V = _einsum("abijklz,ijklz->abz", tab.B4, V)
    A2_K1 = _einsum("abijz,ijz->abz", tab.A2, state.K1)
    B2_K1 = _einsum("abijz,ijz->abz", tab.B2, state.K1)
    B2_DF = _einsum("abijz,ijabz->abz", tab.B2, D) + _einsum("abijz,iajbz->abz", tab.B2, F) + _einsum("abijz,ibjaz->abz", tab.B2, F)

    K1 = r * cw * (0.5 * A2_K1 + 0.125 * fourth_V)
    theta1 = r * (
        lw * (0.5 * A2_K1 + 0.125 * fourth_V)
        + cw * th * (0.5 * B2_K1 + 0.125 * B4_V)
        + cw * P * state.theta1
        + 0.5 * cw * B2_DF
    )

    SS = _einsum("abz,cdz->abcdz", S, S)
    SP = _einsum("abz,cdz->abcdz", S, P)
    PP = _einsum("abz,cdz->abcdz", P, P)
    th_cd = th[None, None]
    th_ab = th[:, :, None, None]
    Pcd = P[None, None]
    Pab = P[:, :, None, None]
    N_cdab = _einsum("abcdz->cdabz", tab.N)
    SP_cdab = _einsum("abz,cdz->cdabz", S, P)

    V_new = cw**2 * (tab.M - SS) + r * 0.25 * cw**2 * AVA
    D_new = (
        cw * lw * (tab.M - SS)
        + cw**2 * th_cd * (tab.N - SP)
        + r * (0.25 * cw * lw * AVA + 0.25 * cw**2 * th_cd * AVB + 0.5 * cw**2 * Pcd * A2_D)
    )
    # F'_{acbd} = cw^2 Theta_cd N_abcd + r cw^2 C_{ac;i} C_{bd;j} F_{icjd}
    F_new = cw**2 * _einsum("cdz,abcdz->acbdz", th, tab.N) + r * cw**2 * _einsum("aciz,bdjz,icjdz->acbdz", tab.C, tab.C, F)
    if not fluctuations:
        return FirstOrderState(K_next, theta_next, K1, theta1, V_new, D_new, F_new, None, None)
    # A' = Cov(Y_ab, Y_cd) + r [V Y2 Y2 / 4 + (cw/2) P_cd D Y2_ab + (cw/2) P_ab D Y2_cd + cw^2 P_ab P_cd A]
    Y2 = lw * tab.A2 + cw * th[:, :, None, None] * tab.B2
    Y2_V = _einsum("abijz,ijklz->abklz", Y2, V)
    Y2_D = _einsum("abijz,ijcdz->abcdz", Y2, D)
    fresh_A = (
        lw**2 * (tab.M - SS)
        + lw * cw * th_cd * (tab.N - SP)
        + lw * cw * th_ab * (N_cdab - SP_cdab)
        + cw**2 * th_ab * th_cd * (tab.Q - PP)
    )
    A_new = fresh_A + r * (
        0.25 * _einsum("abklz,cdklz->abcdz", Y2_V, Y2)
        + 0.5 * cw * Pcd * Y2_D
        + 0.5 * cw * Pab * _einsum("cdabz->abcdz", Y2_D)
        + cw**2 * Pab * Pcd * A
    )
    # B'_{acbd} = cw^2 Theta_ab Theta_cd Q_abcd + r cw^2 P_ac P_bd B_acbd
    B_new = cw**2 * _einsum("abz,cdz,abcdz->acbdz", th, th, tab.Q) + r * cw**2 * _einsum("acz,bdz,acbdz->acbdz", P, P, state.B)
    return FirstOrderState(K_next, theta_next, K1, theta1, V_new, D_new, F_new, A_new, B_new)


_step = jax.jit(first_order_step, static_argnames=("fluctuations",))



def _zero_state(K, theta) -> FirstOrderState:
    P, _, batch = K.shape
    zero2 = np.zeros((P, P, batch))
    zero4 = np.zeros((P,) * 4 + (batch,))
    return FirstOrderState(K, theta, zero2, zero2, zero4, zero4, zero4, zero4, zero4)


def _hyper(mlp: MLP, layer: int) -> _Hyper:
    return _Hyper(mlp.c_b_at(layer), mlp.c_w_at(layer), mlp.lambda_b_at(layer), mlp.lambda_w_at(layer))


def _ratios(mlp: MLP, widths) -> list[float]:
    """r_l = n_l / n_(l-1) for the step l -> l+1, l = 1..L-1 (r_1 multiplies zero)."""
    return [1.0] * (mlp.depth - 1) if widths is None else _width_ratios(hidden_widths(widths, mlp.depth))


def _width_ratios(hidden: Sequence[int]) -> list[float]:
    """[1, n_2/n_1, ..., n_(L-1)/n_(L-2)] of the hidden widths n_1..n_(L-1)."""
    return [1.0] + [hidden[i] / hidden[i - 1] for i in range(1, len(hidden))]


def _run(mlp: MLP, kernels: list, r: list[float], nodes, lines: list | None = None) -> list[FirstOrderState]:
    """Iterate the recursion on leading-order kernels ``kernels[l-1] = (K, theta)``, each (P, P, 1);
    ``lines[l-2]`` (P, P) marks the pairs taken as collinear at layer l = 2..L-1 (:func:`ntkit.theory.tables.collinear_pairs`)."""
    states = [_zero_state(*kernels[0])]
    for layer in range(2, mlp.depth + 1):
        K_prev = kernels[layer - 2][0]
        on_line = lines[layer - 3][..., None] if lines and layer > 2 else None
        tab = layer_tables(mlp.activation, K_prev, with_stein=layer > 2, nodes=nodes, on_line=on_line)  # layer 1 is exactly Gaussian
        states.append(_step(states[-1], tab, _hyper(mlp, layer), r[layer - 2], *kernels[layer - 1]))
    return states


def finite_width(mlp: MLP, x, widths: int | Sequence[int] | None = None, tensors: str = "all", nodes: int | None = None) -> xr.Dataset:
    """First-order statistics per layer 1..L as an ``xarray.Dataset``.

    ``tensors="all"``: K, theta, K1, theta1 on (layer, a1, a2) and V, D, F, A, B on
    (layer, a1, a2, a3, a4), for at most ``MAX_FULL_SAMPLES`` distinct inputs.
    ``tensors="mean"``: K, theta, K1, theta1 only, through 2-sample sub-problems (any m).
    ``widths``: hidden widths n_1..n_(L-1) (int or sequence); they enter only through the ratios
    n_l / n_(l-1) (default equal widths). Layer-l tensors are normalised by n_(l-1): use
    :func:`at_width` for the corrected predictions at given widths. Duplicate inputs are merged.
    Inputs collinear with c_b = 0 (x_b = s x_a; x = 0) are exact: their statistics lie on their line
    and the Stein tables are taken along it. Nearly collinear inputs through a kinked activation
    lose accuracy and raise a :class:`NearlyCollinearWarning`.
    """
    x = validate_inputs(x)
    if tensors not in ("all", "mean"):
        raise ValueError(f"tensors must be 'all' or 'mean', got {tensors!r}")
    r = _ratios(mlp, widths)
    unique, inverse = _distinct_inputs(x)
    stacked = layer_kernels(mlp, unique, nodes=nodes)
    full_kernels = list(zip(*stacked))  # (K, theta) of each layer
    lines = None
    if mlp.activation.has_kink:  # pairs of Stein tables (layers 2..L-1) nearly or exactly collinear
        collinearities = [gram_collinearity(K) for K, _ in full_kernels[1:-1]]
        _warn_nearly_collinear(mlp, full_kernels, collinearities, np.unique(inverse, return_index=True)[1])
        lines = collinear_pairs(collinearities)

    if tensors == "all":
        if unique.shape[0] > MAX_FULL_SAMPLES:
            raise ValueError(
                f"tensors='all' holds m^4 entries per layer and is limited to {MAX_FULL_SAMPLES} distinct inputs "
                f"(got {unique.shape[0]}); use tensors='mean' for K1 and theta1 on many inputs"
            )
        states = _run(mlp, [(K[..., None], th[..., None]) for K, th in full_kernels], r, nodes, lines)
        pair = {name: np.stack([getattr(s, name)[..., 0] for s in states]) for name in ("K", "theta", "K1", "theta1")}
        quad = {name: np.stack([getattr(s, name)[..., 0] for s in states]) for name in ("V", "D", "F", "A", "B")}
    else:
        pair = _mean_path(mlp, *stacked, r, nodes, lines)
        quad = {}

    m = x.shape[0]
    if unique.shape[0] == m:  # distinct inputs: the results are already in the inputs' order
        data = {name: (PAIR_DIMS, value) for name, value in pair.items()} | {name: (QUAD_DIMS, value) for name, value in quad.items()}
    else:
        data = {name: (PAIR_DIMS, value[np.ix_(range(mlp.depth), inverse, inverse)]) for name, value in pair.items()}
        grid = np.ix_(range(mlp.depth), inverse, inverse, inverse, inverse)
        data.update({name: (QUAD_DIMS, value[grid]) for name, value in quad.items()})
    data["x"] = inputs_variable(x)
    coords = {"layer": np.arange(1, mlp.depth + 1), "a1": np.arange(m), "a2": np.arange(m)}
    if quad:
        coords.update({"a3": np.arange(m), "a4": np.arange(m)})
    ds = xr.Dataset(data, coords=coords)
    config = {"kind": "finite_width", "mlp": mlp.describe(), "width_ratios": r, "tensors": tensors}
    return with_provenance(ds, config)


def _warn_nearly_collinear(mlp: MLP, full_kernels: list, collinearities: list, rows: np.ndarray) -> None:
    """Warn when a kinked activation meets a pair of inputs nearly, but not exactly, collinear at a
    layer whose Stein tables are used (2..L-1, ``collinearities`` of their Gram matrices): there the
    first-order statistics are accurate to about 3e-3 of their scale, not 1e-10
    (:mod:`ntkit.theory.tables`). ``rows`` maps distinct inputs to rows of x. Exactly collinear pairs
    (x_b = s x_a with c_b = 0) and zero variances are exact.
    """
    for layer, ((K, _), d) in enumerate(zip(full_kernels[1:-1], collinearities), start=2):
        band = (d > EXACT_COLLINEAR) & (d < KINK_ACCURATE)
        if np.any(band):
            a, b = np.argwhere(band)[0]
            var = np.diagonal(K)
            warnings.warn(
                f"inputs {rows[a]} and {rows[b]} are nearly collinear at layer {layer} (1 - rho^2 = "
                f"{1 - K[a, b] ** 2 / (var[a] * var[b]):.1e}): for the kinked activation {mlp.activation.name!r} their "
                "first-order statistics are accurate to about 3e-3 of their scale (exactly collinear inputs are exact)",
                NearlyCollinearWarning,
                stacklevel=3,
            )
            return


class NearlyCollinearWarning(UserWarning):
    """First-order statistics of nearly collinear inputs through a kinked activation lose accuracy."""


def _distinct_inputs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of x in the order they first appear, index of each row of x among them)."""
    unique, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return unique[order], np.argsort(order)[inverse.reshape(-1)]


def _mean_path(mlp: MLP, K: np.ndarray, theta: np.ndarray, r: list[float], nodes, lines: list | None) -> dict[str, np.ndarray]:
    """K1 and theta1 on all m x m entries from the 2-sample problems {a, b} (1-sample {a} if m = 1), with
    the leading-order K and theta (layers, m, m) they start from.

    The pairs a < b advance together layer by layer in square tiles of the Gram matrix
    (:func:`_tiles`); the tables of a layer are prepared once for all inputs
    (:class:`~ntkit.theory.pair_tables.PairTables`), and a tile's Mehler series are as long as its
    largest correlation needs. The diagonal K1_aa is the sample-a entry of any pair holding a.
    """
    m = K.shape[1]
    out = {"K": K, "theta": theta, "K1": np.zeros((mlp.depth, m, m)), "theta1": np.zeros((mlp.depth, m, m))}
    full_kernels = list(zip(K, theta))
    if m == 1:
        states = _run(mlp, [(k[..., None], th[..., None]) for k, th in full_kernels], r, nodes, lines)
        for l, state in enumerate(states):
            out["K1"][l], out["theta1"][l] = state.K1[..., 0], state.theta1[..., 0]
        return out
    tiles = _tiles(m, MEAN_TILE)
    traced = [_traced(tile) for tile in tiles]
    shape = (tiles[0].rows, tiles[0].cols)
    starts = jnp.asarray([(tile.r0, tile.c0) for tile in tiles], dtype=jnp.int32)
    zero = jnp.zeros(shape)
    # K1, theta1, V, D, F of each tile's pairs (on the device): each the tuple of its distinct entries (:func:`_planes`)
    state = [tuple((zero,) * len(_distinct_entries(perms)) for perms in _SYMMETRIES)] * len(tiles)
    table_length = None  # the previous layer's Mehler series length at rho = 1: where the next layer's search starts
    for layer in range(2, mlp.depth + 1):
        kernels = full_kernels[layer - 2] + full_kernels[layer - 1]  # K, theta of layers l and l + 1
        on_line = lines[layer - 3] if lines and layer > 2 else None
        largest = np.asarray(_largest_correlations(jnp.asarray(kernels[0]), starts, *shape))
        source = PairTables(mlp.activation, kernels[0], with_stein=layer > 2, nodes=nodes, first_terms=table_length, on_line=on_line,
                            correlation=float(largest.max()))  # layer 1 is exactly Gaussian
        table_length = source.terms_at_one or table_length
        h, ratio = _hyper(mlp, layer), float(r[layer - 2])
        if source.generic:
            for i, tile in enumerate(tiles):
                blocks = [tile.dense_block(k).reshape(2, 2, -1) for k in kernels]
                inherited = (dense(_table(s, perms), shape).reshape((2,) * len(perms[0]) + (-1,)) for s, perms in zip(state[i], _SYMMETRIES))
                old = FirstOrderState(blocks[0], blocks[1], *inherited, None, None)
                new = _step(old, source.tables(tile), h, ratio, blocks[2], blocks[3], fluctuations=False)
                state[i] = tuple(_planes(entries(t.reshape(t.shape[:-1] + shape)), perms, shape)
                                 for t, perms in zip((new.K1, new.theta1, new.V, new.D, new.F), _SYMMETRIES))
        else:
            theta = jnp.asarray(kernels[1])
            lengths = [int(n) for n in source.terms_for(largest)]
            for group in _groups(len(tiles), TILES_PER_CALL):
                new = _pair_steps(source.structure, source.data, tuple(traced[i] for i in group), tuple(lengths[i] for i in group),
                                  tuple(state[i] for i in group), h, ratio, theta)
                for i, tile_state in zip(group, new):
                    state[i] = tile_state
        for name, k in (("K1", 0), ("theta1", 1)):
            _assemble(out[name][layer - 1], tiles, [s[k] for s in state])
    return out


def _tiles(m: int, side: int) -> list[Tile]:
    """Square tiles of side about ``side`` (at most m) that cover every pair a < b of m inputs:
    ceil(m / side) starts per axis, the last moved back inside the matrix (overlapping its
    neighbour); tiles holding no pair a < b are left out."""
    size = -(-m // -(-m // min(side, m)))
    starts = [min(start, m - size) for start in range(0, m, size)]
    return [Tile(r0, c0, size, size) for r0 in starts for c0 in starts if c0 + size - 1 > r0]


@functools.partial(jax.jit, static_argnums=(2, 3))
def _largest_correlations(K, starts, rows: int, cols: int):
    """max |rho_ab| over the pairs a < b of each tile (starts (tiles, 2)): how long its Mehler series must be."""
    variances = jnp.diagonal(K)

    def largest(start):
        tile = Tile(start[0], start[1], rows, cols)
        return jnp.abs(correlation(tile.cross(K), tile.first(variances), tile.second(variances))).max()

    return jax.vmap(largest)(starts)


def _assemble(gram: np.ndarray, tiles: list[Tile], planes: list) -> None:
    """Write the m x m Gram into ``gram`` from each tile's distinct entries (rows, cols) ([0, 0], [0, 1],
    [1, 1]): [0, 1] on its pairs a < b and mirrored (exactly symmetric), and on the diagonal the entries
    [0, 0] of the diagonal tiles (the sample-a entry of any pair holding a). The tiles of :func:`_tiles`
    start on one grid for rows and columns; where the last start overlaps its neighbour, the rows and
    columns of the overlap are written by the neighbour's tiles only."""
    size = tiles[0].rows
    starts = sorted({tile.r0 for tile in tiles})
    skip = dict(zip(starts, [0] + [max(0, before + size - start) for before, start in zip(starts, starts[1:])]))
    for tile, (diagonal, pair, _) in zip(tiles, planes):
        r_skip, c_skip = skip[tile.r0], skip[tile.c0]
        rows, cols = slice(tile.r0 + r_skip, tile.r0 + size), slice(tile.c0 + c_skip, tile.c0 + size)
        wanted = tile.upper()[r_skip:, c_skip:]
        values = np.asarray(pair)[r_skip:, c_skip:][wanted]
        gram[rows, cols][wanted] = values
        gram[cols, rows].T[wanted] = values
        if tile.r0 == tile.c0:
            own = np.arange(tile.r0 + r_skip, tile.r0 + size)
            gram[own, own] = np.asarray(diagonal)[r_skip:, 0]


def _groups(count: int, size: int) -> list[tuple[int, ...]]:
    """Indices 0..count-1 in groups of min(size, count), the last filled up with repeats of its
    last index (one compiled group shape; a repeated tile's step is computed again, its result the same)."""
    size = min(size, count)
    return [tuple(min(start + k, count - 1) for k in range(size)) for start in range(0, count, size)]


def _traced(tile: Tile) -> Tile:
    """``tile`` with traced starts (one compilation of the step for every tile of the same shape)."""
    return Tile(jnp.asarray(tile.r0, jnp.int32), jnp.asarray(tile.c0, jnp.int32), tile.rows, tile.cols)


@functools.partial(jax.jit, static_argnums=0)
def _pair_steps(structure, data, tiles: tuple, terms: tuple, states: tuple, h, ratio, theta) -> list:
    """:func:`_pair_step` of each tile (its series length and state) in one compiled call, whose
    independent steps XLA runs concurrently (calls one tile at a time run one after the other)."""
    return [_pair_step(structure, data, tile, n, state, h, ratio, theta) for tile, n, state in zip(tiles, terms, states)]


def _pair_step(structure, data, tile, terms, state, h, ratio, theta):
    """One mean-path step of a tile of pairs: their tables and :func:`first_order_step`, compiled together.

    The step runs entry by entry on arrays over the tile (:func:`~ntkit.theory.pair_tables.entries`),
    and every symmetric tensor is read and written through its canonical entries
    (:data:`_SYMMETRIES`), so XLA computes each distinct entry once and keeps few intermediate
    tables in memory (3x faster than the dense step on (2, ..., 2, pairs) arrays). The traced
    hyperparameters ``h`` and ``ratio`` enter as object arrays too (a JAX scalar on the left of an
    object array would not defer to it), so one compilation serves every layer.
    """
    h = _Hyper(*(_as_entry(value) for value in (h.c_b, h.c_w, h.lambda_b, h.lambda_w)))
    ratio = _as_entry(ratio)
    tab = pair_layer_tables(structure, data, tile, terms)
    K, th = tile.block(data["K"]), tile.block(theta)
    old = FirstOrderState(K, th, *(_table(s, perms) for s, perms in zip(state, _SYMMETRIES)), None, None)
    new = first_order_step(old, tab, h, ratio, None, None, fluctuations=False)
    shape = (tile.rows, tile.cols)
    return tuple(_planes(t, perms, shape) for t, perms in zip((new.K1, new.theta1, new.V, new.D, new.F), _SYMMETRIES))


_PAIR_SYMMETRY = ((0, 1), (1, 0))
_WITHIN_PAIRS = ((0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2))
_PAIR_SWAP = ((0, 1, 2, 3), (2, 3, 0, 1))
# index permutations leaving K1, theta1, V_(12)(34), D_(12)(34) and F invariant
_SYMMETRIES = (_PAIR_SYMMETRY, _PAIR_SYMMETRY, _WITHIN_PAIRS + tuple(p[2:] + p[:2] for p in _WITHIN_PAIRS), _WITHIN_PAIRS, _PAIR_SWAP)


def _as_entry(scalar) -> np.ndarray:
    """A traced scalar as an object array of shape (1,), which broadcasts against the tables."""
    out = np.empty(1, dtype=object)
    out[0] = scalar
    return out


def _canonical(idx: tuple, perms) -> tuple:
    """The canonical index of ``idx``: the smallest of its images under ``perms``."""
    return min(tuple(idx[k] for k in perm) for perm in perms)


@functools.lru_cache(maxsize=None)
def _distinct_entries(perms) -> tuple:
    """The canonical indices of a table (2,) * order invariant under ``perms`` (index permutations of length order)."""
    return tuple(sorted({_canonical(idx, perms) for idx in np.ndindex((2,) * len(perms[0]))}))


def _planes(table: np.ndarray, perms, shape: tuple) -> tuple:
    """The distinct entries of ``table`` (object array invariant under ``perms``) as float64 arrays of
    ``shape`` (structural zeros broadcast): the state a tile keeps, with no entry stored twice."""
    return tuple(jnp.broadcast_to(jnp.asarray(table[idx], jnp.float64), shape) for idx in _distinct_entries(perms))


def _table(planes: tuple, perms) -> np.ndarray:
    """Inverse of :func:`_planes`: the object array whose entries are the planes of their canonical indices."""
    distinct = _distinct_entries(perms)
    out = np.empty((2,) * len(perms[0]), dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = planes[distinct.index(_canonical(idx, perms))]
    return out


def at_width(ds: xr.Dataset, width: int | Sequence[int]) -> xr.Dataset:
    """Predictions at finite width: K + K1/n, theta + theta1/n and the cumulants V/n, ... .

    ``width`` is the hidden width (int: all equal) or n_1..n_(L-1); layer l uses n_(l-1) and
    layer 1 (exactly Gaussian, no correction) is returned unchanged. The widths must have the
    ratios n_l / n_(l-1) that ``ds`` was computed with (``finite_width(..., widths=...)``).
    """
    if not isinstance(ds, xr.Dataset) or "K1" not in ds or "theta1" not in ds:
        raise ValueError("at_width needs the result of ntkit.finite_width (a Dataset with K1 and theta1)")
    config = config_of(ds)
    depth = config.get("mlp", {}).get("depth", ds.sizes["layer"])
    hidden = hidden_widths(width, depth)
    stored = config.get("width_ratios")
    ratios = _width_ratios(hidden)
    if stored is not None and not np.allclose(ratios, stored, rtol=1e-12, atol=0.0):
        raise ValueError(
            f"ds was computed for width ratios n_l/n_(l-1) = {stored[1:]}, but widths {list(hidden)} have ratios {ratios[1:]}: "
            "pass widths in those ratios, or recompute finite_width with widths=..."
        )
    n = np.array((1,) + hidden, dtype=float)[ds["layer"].values - 1]
    fan_in = xr.DataArray(n, dims="layer", coords={"layer": ds["layer"]})
    first = xr.DataArray(ds["layer"].values == 1, dims="layer", coords={"layer": ds["layer"]})
    out = xr.Dataset(coords=ds.coords, attrs=dict(ds.attrs))
    out["K"] = ds["K"] + xr.where(first, 0.0, ds["K1"] / fan_in)
    out["theta"] = ds["theta"] + xr.where(first, 0.0, ds["theta1"] / fan_in)
    for name in ("V", "D", "F", "A", "B"):
        if name in ds:
            out[name] = xr.where(first, 0.0, ds[name] / fan_in)
    if "x" in ds:
        out["x"] = ds["x"]
    return out
