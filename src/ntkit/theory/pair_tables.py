"""Layer tables of every two-sample sub-problem {a, b} of a Gram matrix at once (the mean path).

The pairs come in tiles (:class:`Tile`): the pairs (a, b) of a block of rows a and columns b of
the Gram matrix, so that every per-input quantity is a slice of rows or of columns broadcast
over the tile and a per-pair one a slice of a matrix (no gathers).

The tables of :mod:`ntkit.theory.layer_tables` restricted to the samples (a, b) are built from

* one-sample integrals on the diagonal, one per input (never one per pair), all by one kernel
  (``ntkit.gaussian.one_variable_expectations``);
* S and P by the activation's closed form on each tile, or else from the Gram matrices (Mehler,
  :func:`ntkit.theory.tables.two_point`);
* two-sample integrals <d_a^i d_b^j f(z_a) g(z_b)> by Mehler's series with one table of Hermite
  coefficients per input (``ntkit.mehler.pair_series``), all series of a tile in one compiled
  sum whose length follows the tile's largest correlation;
* for activations with a smooth closed form (erf, gelu) the Stein tables by Price's theorem:
  with G(kaa, kbb, kab) = <sigma_a sigma_b>,

      <d_a d_a F> = 2 dG/dkaa,   <d_a d_b F> = dG/dkab,   <d_a^4 F> = 4 d2G/dkaa2,
      <d_a^3 d_b F> = 2 d2G/dkaa dkab,   <d_a^2 d_b^2 F> = d2G/dkab2,   <sigma_a sigma''_b> = 2 dG/dkbb,

  and the same for sigma' with P = <sigma'_a sigma'_b>, by autodiff of the closed forms.

* for scale-invariant activations (relu, leaky relu: every integrand a piecewise monomial) the
  two-sample entries in closed form (``ntkit.gaussian.piecewise_pair``) and the Stein tables by
  Price's theorem on the arc-cosine closed forms, differentiated by hand (:class:`_PiecewiseLinearStein`).

A layer falls back to :func:`ntkit.theory.layer_tables.layer_tables` on the 2 x 2 blocks when
``nodes`` is given or when the Mehler series do not converge. Only the tables the mean
path needs are built: Q is left out.

The tables of a tile are object arrays (2, ..., 2) whose entries are arrays over the tile's
pairs (rows, 1), (1, cols) or (rows, cols), not dense arrays: an entry equal to another by
symmetry is the same array and a structural zero is Python 0.0, so the compiled step reads the
few distinct entries directly (XLA materializes a dense table that many contractions read, 64
entries for A4 where 8 are distinct).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import trig
from ..activations import Activation
from ..gaussian import PiecewiseMonomial, one_variable_expectations, piecewise_pair, product
from ..mehler import coefficient_tables, pair_series
from .layer_tables import LayerTables, layer_tables
from .tables import integrands, two_point

__all__ = ["PairTables", "Tile", "correlations", "pair_layer_tables", "entries", "dense"]

_TAIL = 1e-14


class PairTables:
    """Per-layer precomputation at the Gram matrix K (m, m); :meth:`tables` gives LayerTables for pairs.

    Unless ``generic``, the tables of a tile of pairs come from :func:`pair_layer_tables`, a
    traceable function of the hashable ``structure`` and the arrays ``data`` (one compilation for
    every layer and tile of the same shape).
    """

    def __init__(self, activation: Activation, K: np.ndarray, with_stein: bool = True, nodes: int | None = None,
                 first_terms: int | None = None, on_line: np.ndarray | None = None, correlation: float = 1.0):
        self.activation, self.K, self.with_stein, self.nodes, self.on_line = activation, K, with_stein, nodes, on_line
        # Mehler series length for the pairs' correlations |rho| <= ``correlation`` and at rho = 1 (tables on
        # the series path only); ``first_terms`` is where the search of the length at rho = 1 starts
        self.terms = self.terms_at_one = None
        sigma, dsigma = integrands(activation)
        var = np.diagonal(K).copy()
        piecewise = isinstance(sigma, PiecewiseMonomial)
        self.generic = nodes is not None
        if self.generic:
            return
        s2, d2 = product(sigma, sigma), product(dsigma, dsigma)
        m_pairs = [(product(s2, sigma), sigma), (s2, s2), (sigma, product(s2, sigma))]
        n_pairs = {(p, q): (_power(sigma, dsigma, p, q), _power(sigma, dsigma, 2 - p, 2 - q)) for p in range(3) for q in range(3) if (p, q) not in ((0, 0), (2, 2))}
        spec = [(f, g, 0, 0) for f, g in m_pairs] + [(f, g, 0, 0) for f, g in n_pairs.values()]
        stein = None  # closed-form Stein splits; without them, Mehler series
        if with_stein and piecewise:
            stein = _PiecewiseLinearStein(sigma.c_plus, sigma.c_minus)
        elif with_stein and activation.pair_functions() is not None:
            stein = _closed_stein(activation.pair_derivatives() or _autodiff_derivatives(*activation.pair_functions()))
        kernel = activation.pair_kernel()  # S and P of a tile in closed form, or from the whole Grams
        data = {"K": K, "var": var} | ({} if kernel else dict(zip(("S", "P"), two_point(activation, K))))
        if isinstance(stein, _PiecewiseLinearStein):
            data["on_line"] = np.zeros(K.shape, dtype=bool) if on_line is None else on_line
        # one-sample values: (function, derivative order) -> <d^order f(z_a)> at each variance
        one_sample = {"M_diag": (product(s2, s2), 0), "N_diag": (product(s2, d2), 0)}
        if with_stein:
            one_sample |= {"A2": (s2, 2), "A4": (s2, 4), "B2": (d2, 2), "B4": (d2, 4), "C": (product(sigma, dsigma), 1)}
            if stein is None:
                for f, g, order in ((sigma, sigma, 2), (sigma, sigma, 4), (dsigma, dsigma, 2), (dsigma, dsigma, 4)):
                    spec += [(f, g, i, order - i) for i in range(order, -1, -1)]
                spec += [(sigma, dsigma, 1, 0), (sigma, dsigma, 0, 1), (dsigma, sigma, 1, 0), (dsigma, sigma, 0, 1)]
        data |= zip(one_sample, one_variable_expectations(list(one_sample.values()), var))
        if piecewise:  # closed forms, no series
            self.data = {name: jnp.asarray(value) for name, value in data.items()}
            self.structure, self.profile = _Structure(tuple(spec), with_stein, stein, kernel, piecewise=True), None
            return
        found = coefficient_tables([(f, g, i + j) for f, g, i, j in spec], var, first_terms, correlation)
        if found is None:  # the series do not converge: 2-D quadrature on the blocks
            self.generic = True
            return
        self.terms, self.terms_at_one, funcs = found.terms, found.terms_at_one, found.functions
        # (terms + top, functions, samples), top the largest derivative order, with zero rows up to
        # 96 * 2^k + top >= the length at rho = 1 (never read: the series stop at self.terms), so that the
        # compiled pair step sees few distinct table shapes (the length at rho = 1 follows the variances only)
        bucket = 96 << max(0, int(np.ceil(np.log2(self.terms_at_one / 96))))
        self.data = {name: jnp.asarray(value) for name, value in data.items()}
        self.data["coefs"] = _series_layout(found.values, bucket - self.terms)
        self.structure = _Structure(tuple((funcs.index(f), funcs.index(g), i, j) for f, g, i, j in spec), with_stein, stein, kernel)
        largest = dict(zip(funcs, found.largest))
        n = np.arange(self.terms)
        self.profile = np.max([largest[f][n + i] * largest[g][n + j] * (1.0 + n) ** ((i + j) / 2) for f, g, i, j in spec], axis=0)

    def terms_for(self, rho_max):
        """Series lengths for pairs with |rho| <= rho_max (a float or an array of them): the terms
        rho^n f_n g_n down to 1e-14 of the largest. At rho_max = ``correlation`` this is the length that
        passed the tail test; 0 for piecewise closed forms."""
        rho_max = np.asarray(rho_max, dtype=float)
        if self.profile is None:
            return np.zeros(rho_max.shape, dtype=int)[()]
        log_rho = np.log(np.maximum(rho_max, 1e-300))[..., None]
        above = self.profile * np.exp(np.arange(self.terms) * log_rho) > _TAIL * self.profile.max()
        last = self.terms - np.argmax(above[..., ::-1], axis=-1)  # one past the last term above the tail
        return np.where(above.any(axis=-1), last, 1)[()]

    def tables(self, tile: "Tile") -> LayerTables:
        """Tables of the two-sample problems of ``tile`` (P = 2, the tile's pairs flattened on the last axis)."""
        if self.generic:
            on_line = None if self.on_line is None else tile.dense_block(self.on_line).reshape(2, 2, -1)
            return layer_tables(self.activation, tile.dense_block(self.K).reshape(2, 2, -1), with_stein=self.with_stein, nodes=self.nodes,
                                with_q=False, on_line=on_line)
        terms = int(self.terms_for(tile.cross(np.abs(correlations(self.K))).max()))
        tab = _pair_layer_tables_jit(self.structure, self.data, tile, terms)
        return jax.tree_util.tree_map(lambda table: np.asarray(table).reshape(table.shape[:-2] + (-1,)), tab)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Tile:
    """The pairs (a, b) = (r0 + i, c0 + j), i < rows, j < cols, of an m x m Gram matrix.

    Only pairs with b > a are wanted: the others are computed with their cross entries set to 0
    (two independent samples, never a singular block) and discarded. A per-input vector v (..., m)
    gives ``first(v)`` (..., rows, 1) and ``second(v)`` (..., 1, cols), a matrix ``cross(M)`` the
    (rows, cols) entries M_ab: slices, not gathers. ``r0`` and ``c0`` may be traced (one
    compilation for every tile of a shape) or ints (numpy).
    """

    r0: int | jax.Array
    c0: int | jax.Array
    rows: int = field(metadata=dict(static=True))
    cols: int = field(metadata=dict(static=True))

    def first(self, v):
        return _window(v, self.r0, self.rows)[..., :, None]

    def second(self, v):
        return _window(v, self.c0, self.cols)[..., None, :]

    def upper(self):
        """(rows, cols): the wanted pairs, b > a."""
        xp = jnp if isinstance(self.r0, jax.Array) else np
        return (self.c0 + xp.arange(self.cols))[None, :] > (self.r0 + xp.arange(self.rows))[:, None]

    def cross(self, M):
        xp = jnp if isinstance(M, jax.Array) or isinstance(self.r0, jax.Array) else np
        return xp.where(self.upper(), _window(_window(M, self.r0, self.rows, axis=0), self.c0, self.cols), xp.zeros((), M.dtype))

    def block(self, M) -> np.ndarray:
        """The 2 x 2 blocks M[(a, b), (a, b)] as an object array of entries (symmetric M)."""
        xp = jnp if isinstance(M, jax.Array) else np
        diagonal = xp.diagonal(M)
        return _pair_block(self.first(diagonal), self.cross(M), self.second(diagonal))

    def dense_block(self, M):
        """:meth:`block` as an array (2, 2, rows, cols) of M's dtype."""
        xp = jnp if isinstance(M, jax.Array) else np
        ab = self.cross(M)
        aa, bb = (xp.broadcast_to(side(xp.diagonal(M)), ab.shape) for side in (self.first, self.second))
        return xp.stack([xp.stack([aa, ab]), xp.stack([ab, bb])])


def _window(v, start, size: int, axis: int = -1):
    """v[..., start:start + size] along ``axis`` (a dynamic slice when ``start`` is traced)."""
    if isinstance(start, (int, np.integer)):
        return v[(slice(None),) * (axis % v.ndim) + (slice(start, start + size),)]
    return jax.lax.dynamic_slice_in_dim(v, start, size, axis)


@dataclass(frozen=True)
class _Structure:
    """What fixes the computation of :func:`pair_layer_tables` (hashable: a static argument)."""

    spec: tuple  # (f, g, i, j): f, g index data["coefs"] (the functions if piecewise); M, N series, then Stein splits
    with_stein: bool
    stein: Callable | None  # (kaa, kbb, kab) -> the Stein splits (20, pairs) in closed form, or None (series)
    kernel: Callable | None  # (kaa, kbb, kab) -> (S, P) in closed form, or None (data["S"], data["P"])
    piecewise: bool = False  # M and N entries by ntkit.gaussian.piecewise_pair instead of Mehler series


def correlations(K):
    """rho_ab = K_ab / sqrt(K_aa K_bb), clipped to [-1, 1] (0 where a variance vanishes; numpy or traced)."""
    xp = jnp if isinstance(K, jax.Array) else np
    variances = xp.diagonal(K)
    return correlation(K, variances[:, None], variances[None, :])


def correlation(kab, va, vb):
    """kab / sqrt(va vb), clipped to [-1, 1], 0 where a variance vanishes (numpy or traced)."""
    xp = jnp if isinstance(kab, jax.Array) else np
    denom = xp.sqrt(va * vb)
    return xp.clip(xp.where(denom > 0, kab / xp.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)


def pair_layer_tables(structure: _Structure, data: dict, tile: Tile, terms) -> LayerTables:
    """LayerTables of the pairs of ``tile`` as object arrays of entries (:func:`entries`), equal
    entries the same array and structural zeros Python 0.0 (traceable; ``terms`` may be traced)."""
    var = data["var"]
    va, vb, kab = tile.first(var), tile.second(var), tile.cross(data["K"])
    if structure.piecewise:
        values = [piecewise_pair(f, g, va, vb, kab) for f, g, _, _ in structure.spec]
    else:
        safe = jnp.where(var > 0, var, 1.0)
        values = pair_series(structure.spec, data["coefs"], terms, tile, tile.first(safe), tile.second(safe), correlation(kab, va, vb))
    if structure.kernel:
        (S_aa, P_aa), (S_bb, P_bb), (S_ab, P_ab) = (structure.kernel(u, v, w) for u, v, w in ((va, va, va), (vb, vb, vb), (va, vb, kab)))
        S, P = _pair_block(S_aa, S_ab, S_bb), _pair_block(P_aa, P_ab, P_bb)
    else:
        S, P = tile.block(data["S"]), tile.block(data["P"])
    M = _pick([tile.first(data["M_diag"]), values[0], values[1], values[2], tile.second(data["M_diag"])], _M_MAP, 4)
    n_cols = {(2, 2): tile.first(data["N_diag"]), (0, 0): tile.second(data["N_diag"])} | {key: values[3 + k] for k, key in enumerate(_N_SERIES)}
    N = _pick([n_cols[key] for key in _N_KEYS], _N_MAP, 4)
    if not structure.with_stein:
        def zero(order):  # structural zeros, as in the Stein tables' entries
            return np.full((2,) * order, 0.0, dtype=object)

        return LayerTables(S, P, M, N, None, zero(4), zero(6), zero(4), zero(6), zero(3))
    if isinstance(structure.stein, _PiecewiseLinearStein):
        stein = structure.stein(va, vb, kab, tile.cross(data["on_line"]))
    else:
        stein = structure.stein(va, vb, kab) if structure.stein else values[10:]
    # the distinct splits behind one barrier, else XLA recomputes the closed forms for every table entry (10x slower)
    distinct = {id(split): k for k, split in reversed(list(enumerate(stein)))}  # first position of each array
    order = sorted(set(distinct.values()))
    stacked = jax.lax.optimization_barrier(jnp.stack([jnp.broadcast_to(stein[k], kab.shape) for k in order]))
    stein = [stacked[order.index(distinct[id(split)])] for split in stein]
    one_sample = {name: (tile.first(data[name]), tile.second(data[name])) for name in ("A2", "A4", "B2", "B4", "C")}
    A2 = _stein_entries(stein[0:3], *one_sample["A2"], 2)
    A4 = _stein_entries(stein[3:8], *one_sample["A4"], 4)
    B2 = _stein_entries(stein[8:11], *one_sample["B2"], 2)
    B4 = _stein_entries(stein[11:16], *one_sample["B4"], 4)
    # C_ac;i: (s on a, s' on c); off the diagonal the Stein splits, on it the one-sample values
    C = _pick([0.0, *one_sample["C"], stein[16], stein[17], stein[18], stein[19]], _C_MAP, 3)
    return LayerTables(S, P, M, N, None, A2, A4, B2, B4, C)


def entries(dense) -> np.ndarray:
    """The entries of ``dense`` (2, ..., 2, rows, cols) as a numpy object array of (rows, cols) arrays."""
    out = np.empty(dense.shape[:-2], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = dense[idx]
    return out


def dense(table: np.ndarray, shape: tuple):
    """Inverse of :func:`entries`: float64 (never weak-typed, so that a step's outputs compile like its
    inputs), every entry broadcast to ``shape`` (structural zeros to zeros)."""
    return jnp.stack([jnp.broadcast_to(jnp.asarray(e, jnp.float64), shape) for e in table.reshape(-1)]).reshape(table.shape + shape)


def _pair_block(aa, ab, bb) -> np.ndarray:
    """The symmetric 2 x 2 object array [[aa, ab], [ab, bb]] (shared entries, no copies)."""
    return _pick([aa, ab, bb], np.array([0, 1, 1, 2]), 2)


def _pick(rows: list, index: np.ndarray, order: int) -> np.ndarray:
    """Object array (2,) * order with entry k = rows[index[k]] (shared objects, no copies)."""
    out = np.empty(len(index), dtype=object)
    for k, i in enumerate(index):
        out[k] = rows[i]
    return out.reshape((2,) * order)


@functools.partial(jax.jit, static_argnums=1)
def _series_layout(values, padding: int):
    """Coefficient tables (functions, samples, terms) as (terms + padding, functions, samples): each
    term's coefficients contiguous for the Horner sums, zero rows appended (one compiled pass)."""
    return jnp.pad(jnp.transpose(values, (2, 0, 1)), ((0, padding), (0, 0), (0, 0)))


@functools.partial(jax.jit, static_argnums=0)
def _pair_layer_tables_jit(structure, data, tile, terms) -> LayerTables:
    """:func:`pair_layer_tables` as dense arrays (..., rows, cols)."""
    tab = pair_layer_tables(structure, data, tile, terms)
    shape = (tile.rows, tile.cols)
    return LayerTables(*(None if t is None else dense(t, shape) for t in (tab.S, tab.P, tab.M, tab.N, tab.Q, tab.A2, tab.A4, tab.B2, tab.B4, tab.C)))


def _power(sigma, dsigma, p: int, q: int):
    return product(*([sigma] * p + [dsigma] * q))


_SLOTS4 = list(itertools.product((0, 1), repeat=4))
_M_MAP = np.array([idx.count(1) for idx in _SLOTS4])  # rows: a^4, a^3 b, a^2 b^2, a b^3, b^4
_N_KEYS = [(p, q) for p in range(3) for q in range(3)]
_N_SERIES = [key for key in _N_KEYS if key not in ((0, 0), (2, 2))]  # the others are one-sample
# N_abcd = <s_a s_b s'_c s'_d>: sample 0 carries sigma^p sigma'^q with p = #{a, b = 0}, q = #{c, d = 0}
_N_MAP = np.array([_N_KEYS.index((idx[:2].count(0), idx[2:].count(0))) for idx in _SLOTS4])
# C rows: 0, diag a, diag b, then (a, c, i) = (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1)
_C_MAP = np.array([{(0, 0, 0): 1, (1, 1, 1): 2, (0, 1, 0): 3, (0, 1, 1): 4, (1, 0, 0): 5, (1, 0, 1): 6}.get(idx, 0) for idx in itertools.product((0, 1), repeat=3)])


@functools.lru_cache(maxsize=None)
def _stein_map(order: int) -> np.ndarray:
    """Row of T[a, c, i..., z] in [splits (order, 0) ... (0, order), diag a, diag b, 0].

    Off the diagonal (a != c) every index is a sample of the function, so the entry is the split
    with that many indices on sample 0 (sigma sigma and sigma' sigma' are symmetric in a, c); on
    the diagonal only i = ... = a survives, the one-sample value.
    """
    diag_a, diag_b, zero = order + 1, order + 2, order + 3
    rows = []
    for a, c, *idx in itertools.product((0, 1), repeat=order + 2):
        if a != c:
            rows.append(idx.count(1))
        elif all(i == a for i in idx):
            rows.append(diag_a if a == 0 else diag_b)
        else:
            rows.append(zero)
    return np.array(rows)


def _stein_entries(splits, diag_a, diag_b, order: int):
    """T[a, c, i...] from the split values (derivatives on sample 0, sample 1) = (order, 0), ..., (0, order)."""
    return _pick(list(splits) + [diag_a, diag_b, 0.0], _stein_map(order), order + 2)


@functools.lru_cache(maxsize=None)
def _closed_stein(derivatives):
    """Stein splits of sigma sigma (orders 2, 4), sigma' sigma' (2, 4) and the C entries, by Price's theorem,
    from ``derivatives`` (kaa, kbb, kab) -> P and the derivatives of G and P (:func:`_autodiff_derivatives`).

    With dG/dkab = P, the second derivatives of G that mix kab are first derivatives of P, so
    only d2G/dkaa2 and d2G/dkbb2 and five second derivatives of P are needed.
    """

    def stein(kaa, kbb, kab):
        d = derivatives(kaa, kbb, kab)
        p, p_c = d["p"], d["p_c"]
        twice = {name: 2 * d[name] for name in ("g_a", "g_b", "p_a", "p_b")}  # each computed once: equal splits are one array
        g2, g4 = [twice["g_a"], p, twice["g_b"]], [4 * d["g_aa"], twice["p_a"], p_c, twice["p_b"], 4 * d["g_bb"]]
        p2, p4 = [twice["p_a"], p_c, twice["p_b"]], [4 * d["p_aa"], 2 * d["p_ac"], d["p_cc"], 2 * d["p_bc"], 4 * d["p_bb"]]
        # C: (sigma on 0, sigma' on 1) with d_0, d_1; then (sigma' on 0, sigma on 1) with d_0, d_1
        return g2 + g4 + p2 + p4 + [p, twice["g_b"], twice["g_a"], p]

    return stein


@functools.lru_cache(maxsize=None)
def _autodiff_derivatives(G, P):
    """(kaa, kbb, kab) -> P and the derivatives of :func:`_closed_stein` by autodiff of the closed forms G, P,
    each second derivative a forward derivative of a forward derivative (a full Hessian by reverse mode cost 1.7x more)."""

    def second(F, i, j, k):
        """F, dF/dk_i, dF/dk_j, d2F/dk_i dk_j at k = (kaa, kbb, kab)."""
        e_i, e_j = (jnp.zeros(3).at[n].set(1.0) for n in (i, j))
        along_j = lambda point: jax.jvp(lambda q: F(*q), (point,), (e_j,))
        (value, d_j), (d_i, d_ij) = jax.jvp(along_j, (k,), (e_i,))
        return value, d_i, d_j, d_ij

    def one(kaa, kbb, kab):
        k = jnp.stack([kaa, kbb, kab])
        _, g_a, _, g_aa = second(G, 0, 0, k)
        _, g_b, _, g_bb = second(G, 1, 1, k)
        p, p_a, _, p_aa = second(P, 0, 0, k)
        _, p_b, _, p_bb = second(P, 1, 1, k)
        _, p_c, _, p_cc = second(P, 2, 2, k)
        p_ac, p_bc = second(P, 0, 2, k)[3], second(P, 1, 2, k)[3]
        return {"p": p, "g_a": g_a, "g_b": g_b, "g_aa": g_aa, "g_bb": g_bb, "p_a": p_a, "p_b": p_b, "p_c": p_c,
                "p_aa": p_aa, "p_bb": p_bb, "p_ac": p_ac, "p_bc": p_bc, "p_cc": p_cc}

    def derivatives(kaa, kbb, kab):
        shape = jnp.broadcast_shapes(jnp.shape(kaa), jnp.shape(kbb), jnp.shape(kab))
        flat = (jnp.broadcast_to(k, shape).reshape(-1) for k in (kaa, kbb, kab))
        return {name: value.reshape(shape) for name, value in jax.vmap(one)(*flat).items()}

    return derivatives


@dataclass(frozen=True)
class _PiecewiseLinearStein:
    """The Stein splits of :func:`_closed_stein` for sigma(z) = a_+ z (z > 0), a_- z (z < 0), by hand.

    With Delta = a_+ - a_-, rho = kab / sqrt(kaa kbb) = cos(theta) and R = sqrt(kaa kbb - kab^2):

        G = <sigma_a sigma_b>   = a_+ a_- kab + Delta^2 (R + (pi - theta) kab) / 2pi,
        P = <sigma'_a sigma'_b> = a_+ a_- + Delta^2 (pi - theta) / 2pi,

    whose derivatives (q = Delta^2 / 4pi) are dG/dkab = P, dG/dkaa = q R / kaa,
    dP/dkab = 2q / R, dP/dkaa = -q kab / (kaa R), d2G/dkaa2 = q (2 kab^2 - kaa kbb) / (2 kaa^2 R),
    dP/dkab2 = 2q kab / R^3, d2P/dkaa dkab = -q kbb / R^3,
    d2P/dkaa2 = q kab (2 R^2 + kaa kbb) / (2 kaa^2 R^3), and a <-> b. Checked against 2-D
    quadrature (tests/test_first_order.py); near the zeros of d2G/dkaa2 it is more accurate than
    autodiff of the closed forms.

    Pairs marked ``on_line`` (:func:`ntkit.theory.tables.collinear_pairs`) are taken on their line
    z_b = t z_a, t = kab / kaa, every derivative on sample a: with s = a_+^2 + a_-^2 for t > 0
    (sigma(t u) = t sigma(u)) and s = 2 a_+ a_- for t < 0 (then sigma(t u) sigma(u) = t a_+ a_- u^2),
    <(d/du)^2 sigma(u) sigma(t u)> = t s, <d/du sigma(u) sigma'(t u)> = s / 2 and
    <d/du sigma'(u) sigma(t u)> = t s / 2, while every other split vanishes (its integrand's kinks
    give derivatives of a delta at 0, whose expectations vanish by symmetry). A zero variance
    (z_a = 0) leaves derivatives along the other sample only (``ntkit.gaussian``, singular="range"):
    with mid = sigma'(0) = (a_+ + a_-)/2 they all vanish but <d_b (sigma'(0) sigma(z_b))> = mid^2.
    """

    a_plus: float
    a_minus: float

    def __call__(self, kaa, kbb, kab, on_line):
        q = (self.a_plus - self.a_minus) ** 2 / (4 * jnp.pi)
        s = jnp.sqrt(kaa * kbb)
        rho = kab / s
        R = s * jnp.sqrt((1 - rho) * (1 + rho))
        if q == 0:  # no kink (linear): every term with R carries q, and R may vanish
            R = jnp.ones_like(R)
        R3 = R**3
        P = self.a_plus * self.a_minus + 2 * q * (jnp.pi - trig.arccos(rho))
        g_a, g_b = q * R / kaa, q * R / kbb
        g_aa, g_bb = (q * (2 * kab**2 - kaa * kbb) / (2 * k**2 * R) for k in (kaa, kbb))
        p_a, p_b, p_ab = -q * kab / (kaa * R), -q * kab / (kbb * R), 2 * q / R
        p_aa, p_bb = (q * kab * (2 * R**2 + kaa * kbb) / (2 * k**2 * R3) for k in (kaa, kbb))
        second_g, fourth_g = [2 * g_a, P, 2 * g_b], [4 * g_aa, 2 * p_a, p_ab, 2 * p_b, 4 * g_bb]
        second_p = [2 * p_a, p_ab, 2 * p_b]
        fourth_p = [4 * p_aa, -2 * q * kbb / R3, 2 * q * kab / R3, -2 * q * kaa / R3, 4 * p_bb]
        regular = second_g + fourth_g + second_p + fourth_p + [P, 2 * g_b, 2 * g_a, P]
        t = kab / kaa
        s_line = jnp.where(t > 0, self.a_plus**2 + self.a_minus**2, 2 * self.a_plus * self.a_minus)
        line = [t * s_line] + [0.0] * 15 + [0.5 * s_line, 0.0, 0.5 * t * s_line, 0.0]
        # a zero variance: only <d (sigma'(0) sigma(z))> = sigma'(0) <sigma'> = mid^2 along the other sample
        mid2 = (0.5 * (self.a_plus + self.a_minus)) ** 2
        only_b, only_a = (kaa <= 0) & (kbb > 0), (kbb <= 0) & (kaa > 0)
        degenerate = [0.0] * 16 + [jnp.where(only_a, mid2, 0.0), 0.0, 0.0, jnp.where(only_b, mid2, 0.0)]
        zero_variance = (kaa <= 0) | (kbb <= 0)
        return [jnp.where(zero_variance, d, jnp.where(on_line, ln, r)) for d, ln, r in zip(degenerate, line, regular)]
