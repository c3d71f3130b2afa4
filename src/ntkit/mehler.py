"""Two-variable Gaussian expectations for many blocks at once, by Mehler's expansion.

For (z_a, z_b) ~ N(0, [[v_a, c], [c, v_b]]), rho = c / sqrt(v_a v_b), and smooth f, g,

    <d_a^i d_b^j f(z_a) g(z_b)> = v_a^(-i/2) v_b^(-j/2) sum_n rho^n sqrt((n+i)! (n+j)!) / n!  f_(n+i)(v_a) g_(n+j)(v_b),

where f_n(v) = E[f(sqrt(v) u) psi_n(u)] are the coefficients of f in the orthonormal Hermite
basis psi_n = He_n / sqrt(n!) (u ~ N(0, 1)). This is Mehler's formula for the bivariate normal
density, and d/dz f(sqrt(v) u) integrated against He_n equals v^(-1/2) times the integral of f
against He_(n+1) (Gaussian integration by parts). The coefficients depend on one sample's
variance only, so a Gram matrix of m inputs needs m one-dimensional coefficient vectors and a
dot product of length ~N per pair instead of a two-dimensional quadrature per pair.

The series is truncated where its terms (products of the two functions' coefficients, with the
polynomial weight of the derivative order) have decayed below 1e-14 of the leading ones; if that takes more
than ``MAX_TERMS`` terms (functions with kinks, or poles very close to the real axis at large
variance) :func:`mehler_pairs` returns ``None`` and the caller falls back to 2-D quadrature.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln, roots_hermitenorm

__all__ = ["mehler_pairs", "CoefficientTables", "coefficient_tables", "gram_rows", "pair_series", "MAX_TERMS"]

MAX_TERMS = 768
_FIRST_TERMS = 96
_NODE_MARGIN = 64  # Gauss–Hermite nodes beyond the series length at rho = 1 (the rule aliases orders near 2 nodes - n)
_PROBES = 16  # variances on which the series length at rho = 1 is found (quantiles, the largest among them)
_TAIL = 1e-14
_PAIR_CHUNK = 8192
_UNROLL = 8  # Horner steps per loop iteration: fewer passes over the accumulator (gelu, a tile of 91 x 91 pairs, 96 terms: 2.35 -> 1.90 ms)


@functools.lru_cache(maxsize=None)
def _scaled_hermite_functions(terms: int, nodes: int):
    """Gauss–Hermite nodes u_q (``nodes`` of them) and the matrix W[q, n] = w_q psi_n(u_q), n < terms (weights for N(0, 1)).

    psi_n e^{-u^2/4} is bounded, so it is built by the three-term recurrence and the weight is
    applied as w_q e^{u_q^2/4}.
    """
    u, w = roots_hermitenorm(nodes)
    w = w / math.sqrt(2 * math.pi)
    damped = np.empty((nodes, terms))
    damped[:, 0] = np.exp(-0.25 * u * u)
    if terms > 1:
        damped[:, 1] = u * damped[:, 0]
    for n in range(1, terms - 1):
        damped[:, n + 1] = (u * damped[:, n] - math.sqrt(n) * damped[:, n - 1]) / math.sqrt(n + 1)
    with np.errstate(divide="ignore"):
        lifted = np.exp(np.log(w) + 0.25 * u * u)  # w_q e^{u_q^2/4}; weights that underflowed give 0
    return u, lifted[:, None] * damped


def _coefficients(functions: tuple, variances: np.ndarray, terms: int, nodes: int | None = None) -> tuple[jax.Array, np.ndarray]:
    """f_n(v) = E[f(sqrt(v) u) psi_n(u)] for n < terms by the Gauss–Hermite rule of ``nodes`` nodes
    (default terms + _NODE_MARGIN): (tables (functions, variances, terms) on the device, largest
    (functions, terms): max over the variances of |f_n|) (cached)."""
    nodes = nodes or terms + _NODE_MARGIN
    key = (functions, terms, nodes, variances.tobytes())
    if key not in _COEFFICIENT_CACHE:
        if sum(values.nbytes for values, _ in _COEFFICIENT_CACHE.values()) > _CACHE_BYTES:
            _COEFFICIENT_CACHE.clear()
        bucket = max(16, 1 << int(np.ceil(np.log2(max(len(variances), 1)))))
        padded = np.concatenate([variances, np.ones(bucket - len(variances))])
        values, largest = _coefficient_kernel(functions, terms, nodes)(jnp.asarray(padded), len(variances))
        _COEFFICIENT_CACHE[key] = values[:, : len(variances)], np.asarray(largest)
    return _COEFFICIENT_CACHE[key]


_COEFFICIENT_CACHE: dict = {}
_CACHE_BYTES = 1 << 28  # the cached tables are dropped beyond 256 MiB (m = 1000, 332 terms, 8 functions: 21 MB a table)


@functools.lru_cache(maxsize=None)
def _coefficient_kernel(functions: tuple, terms: int, nodes: int):
    """All functions in one compiled kernel (:func:`_evaluate`) and one product with the Hermite weights."""
    u, weighted = (jnp.asarray(a) for a in _scaled_hermite_functions(terms, nodes))

    @jax.jit
    def run(variances, count):
        z = jnp.sqrt(variances)[:, None] * u[None, :]
        values = _evaluate(functions, z) @ weighted
        real = (jnp.arange(variances.shape[0]) < count)[None, :, None]  # the padding is left out of the maxima
        return values, jnp.max(jnp.where(real, jnp.abs(values), 0.0), axis=1)

    return run


def _evaluate(functions: tuple, z):
    """(functions, *z.shape): every function at z, the distinct factors of the products (e.g. sigma
    and sigma') evaluated once and kept behind an optimization barrier (else XLA fuses them into
    every product that uses them: 3x slower for the eight products of the gelu mean path)."""
    flat = [_factors(f) for f in functions]
    leaves = list(dict.fromkeys(leaf for product in flat for leaf in product))
    values = jax.lax.optimization_barrier(jnp.stack([leaf(z) for leaf in leaves]))
    return jnp.stack([functools.reduce(operator.mul, (values[leaves.index(leaf)] for leaf in product)) for product in flat])


def _factors(f) -> tuple:
    """The one-variable factors of a product of ``ntkit.gaussian.product`` (which lists them as
    ``factors``; nested products flattened), (f,) for any other function."""
    return tuple(leaf for g in f.factors for leaf in _factors(g)) if hasattr(f, "factors") else (f,)


def _longer(terms: int) -> int:
    """The next series length tried: 1.5x, a multiple of 8, at most MAX_TERMS (a coefficient table
    costs ~terms^2 per input, so finer steps than doubling pay for the extra tries)."""
    return min(MAX_TERMS, -(-3 * terms // 16) * 8)


@functools.lru_cache(maxsize=None)
def _series_kernel(terms: int, order: int):
    """Jitted sums S_ij = v_a^(-i/2) v_b^(-j/2) sum_n rho^n c_n^ij f_(n+i) g_(n+j) for every split (i, j)."""
    splits = _splits(order)
    n = np.arange(terms, dtype=float)
    rising = {i: np.exp(0.5 * (gammaln(n + i + 1.0) - gammaln(n + 1.0))) for i in range(order + 1)}
    weights = jnp.asarray(np.stack([rising[i] * rising[j] for i, j in splits]))

    @jax.jit
    def run(rho, var_a, var_b, coef_f, index_a, coef_g, index_b):
        fa = coef_f.T[:, index_a]  # (orders, pairs): each Horner step reads one contiguous row
        gb = coef_g.T[:, index_b]

        def horner(step, acc):  # acc <- acc * rho + c_n f_(n+i) g_(n+j), n from terms-1 down to 0
            n = terms - 1 - step
            new = [
                acc[s] * rho + weights[s, n] * jax.lax.dynamic_index_in_dim(fa, n + i, 0, False) * jax.lax.dynamic_index_in_dim(gb, n + j, 0, False)
                for s, (i, j) in enumerate(splits)
            ]
            return jnp.stack(new)

        acc = jax.lax.fori_loop(0, terms, horner, jnp.zeros((len(splits),) + rho.shape))
        scale = jnp.stack([var_a ** (-i / 2) * var_b ** (-j / 2) for i, j in splits])
        return (acc * scale).T

    return run


def _splits(order: int) -> list[tuple[int, int]]:
    """(derivatives on the first variable, on the second) for the index tuples of ``order``."""
    return sorted({(idx.count(0), idx.count(1)) for idx in itertools.product((0, 1), repeat=order)})


def _series_terms(top_f: np.ndarray, top_g: np.ndarray, order: int, rho: float = 1.0) -> tuple[np.ndarray, float]:
    """(bounds rho^n |f_n g_n| (1+n)^(order/2) of the terms of a series, with top_f, top_g the largest
    |f_n|, |g_n| over the samples; the leading size |f_n g_n| it is measured against)."""
    n = np.arange(top_f.shape[0], dtype=float)
    with np.errstate(divide="ignore", under="ignore"):
        weight = np.exp(n * np.log(max(rho, 1e-300)))
    return top_f * top_g * (1.0 + n) ** (order / 2) * weight, max(top_f.max() * top_g.max(), 1e-300)


def _converged(top_f: np.ndarray, top_g: np.ndarray, order: int, rho: float = 1.0) -> bool:
    """The terms (:func:`_series_terms`) of the last 16 orders at correlation rho are below _TAIL of the leading ones."""
    terms, leading = _series_terms(top_f, top_g, order, rho)
    return bool(terms[-16:].max() <= _TAIL * leading)


def mehler_pairs(f, g, cov: np.ndarray, order: int) -> np.ndarray | None:
    """<d^order f(z_0) g(z_1)> for cov (B, 2, 2); shape (B,) + (2,) * order, or None if not converged."""
    var_a, var_b = cov[:, 0, 0], cov[:, 1, 1]
    if order > 0 and (np.any(var_a <= 0) or np.any(var_b <= 0)):
        return None
    unique_a, index_a = np.unique(var_a, return_inverse=True)
    unique_b, index_b = np.unique(var_b, return_inverse=True)
    terms = _FIRST_TERMS
    while True:
        (coef_f,), (top_f,) = _coefficients((f,), unique_a, terms + order)
        (coef_g,), (top_g,) = _coefficients((g,), unique_b, terms + order)
        if _converged(top_f, top_g, order):
            break
        if terms >= MAX_TERMS:
            return None
        terms = _longer(terms)

    denom = np.sqrt(var_a * var_b)
    rho = np.clip(np.where(denom > 0, cov[:, 0, 1] / np.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)
    run = _series_kernel(terms, order)
    splits = _splits(order)
    pieces = []
    for start in range(0, cov.shape[0], _PAIR_CHUNK):
        rows = slice(start, start + _PAIR_CHUNK)
        pad = _PAIR_CHUNK - len(rho[rows])
        args = [np.pad(a[rows], (0, pad), constant_values=fill) for a, fill in ((rho, 0.0), (var_a, 1.0), (var_b, 1.0))]
        idx = [np.pad(a[rows], (0, pad)) for a in (index_a, index_b)]
        out = run(*args[:3], coef_f, idx[0], coef_g, idx[1])
        pieces.append(np.asarray(out)[: _PAIR_CHUNK - pad])
    series = np.concatenate(pieces)
    result = np.empty((cov.shape[0],) + (2,) * order)
    for idx in itertools.product((0, 1), repeat=order):
        result[(slice(None),) + idx] = series[:, splits.index((idx.count(0), idx.count(1)))]
    return result


@dataclass(frozen=True)
class CoefficientTables:
    """Hermite coefficients f_n(v) of several functions at many variances (:func:`coefficient_tables`)."""

    functions: tuple
    values: jax.Array  # (functions, variances, terms + largest order), on the device
    largest: np.ndarray  # (functions, terms + largest order): max over the variances of |f_n|
    terms: int  # the series length that passed the tail test at the largest correlation asked for
    terms_at_one: int  # the series length at rho = 1 (which fixed the quadrature rule)

    def __getitem__(self, f):
        """The table (variances, terms + largest order) of function f."""
        return self.values[self.functions.index(f)]


def coefficient_tables(series, variances: np.ndarray, first_terms: int | None = None, correlation: float = 1.0) -> CoefficientTables | None:
    """Hermite coefficients of every function of ``series`` at every variance, long enough for all.

    ``series``: (f, g, order) triples to be summed by :func:`gram_rows` or :func:`pair_series`
    for pairs with |rho| <= ``correlation``; the functions are kept in their order of first
    appearance in ``series``. The tables hold the terms those pairs need (each series passes the
    tail test at rho = ``correlation``), computed by the Gauss–Hermite rule of the series length
    at rho = 1 plus ``_NODE_MARGIN`` nodes: a rule with fewer nodes aliases the slowly decaying high
    orders into the coefficients kept (half-way between the lengths: up to 2e-9 of the largest
    coefficient for tanh, 2e-10 for erf, 2e-11 for gelu). The length at rho = 1 grows
    with the variance (checked for every smooth activation of the registry), so it is searched on
    ``_PROBES`` quantiles of the variances, the largest among them: it grows 1.5x at a time from
    ``first_terms`` (default 96; e.g. the length the previous layer needed); ``None`` beyond
    ``MAX_TERMS``. All functions are evaluated by one compiled kernel.
    """
    variances = np.asarray(variances, dtype=np.float64)
    top = max(order for _, _, order in series)
    functions = tuple(dict.fromkeys(h for f, g, _ in series for h in (f, g)))

    def passed(largest, rho):
        return all(_converged(largest[functions.index(f)], largest[functions.index(g)], order, rho) for f, g, order in series)

    probes = np.unique(np.quantile(variances, np.linspace(0.0, 1.0, _PROBES)))
    terms = min(first_terms or _FIRST_TERMS, MAX_TERMS)
    while True:
        _, at_probes = _coefficients(functions, probes, terms + top)
        if passed(at_probes, 1.0):
            length = terms if correlation >= 1.0 else _length_at(series, functions, at_probes, correlation, terms)
            values, largest = _coefficients(functions, variances, length + top, terms + top + _NODE_MARGIN)
            if passed(largest, correlation):
                return CoefficientTables(functions, values, largest, length, terms)
        if terms >= MAX_TERMS:
            return None
        terms = _longer(terms)


def _length_at(series, functions: tuple, largest: np.ndarray, rho: float, terms: int) -> int:
    """The shortest of terms/2, 3 terms/4 and ``terms`` (multiples of 8: few compiled shapes as the
    inputs change) whose last 16 terms of every series at correlation rho are below the tail
    (``largest`` per function, as in :func:`_converged`)."""
    last = 0
    for f, g, order in series:
        bounds, leading = _series_terms(largest[functions.index(f)], largest[functions.index(g)], order, rho)
        above = np.nonzero(bounds > _TAIL * leading)[0]
        last = max(last, int(above.max()) if above.size else 0)
    return next(length for length in (-(-terms // 16) * 8, -(-3 * terms // 32) * 8, terms) if length >= min(last + 17, terms))


@functools.lru_cache(maxsize=None)
def _gram_kernel(terms: int):
    @jax.jit
    def run(rho, coef_rows, coef_cols):
        """sum_n rho^n f_n(row) g_n(col) by Horner; coef_* are (terms, samples)."""

        def horner(step, acc):
            n = terms - 1 - step
            f_n = jax.lax.dynamic_index_in_dim(coef_rows, n, 0, False)
            g_n = jax.lax.dynamic_index_in_dim(coef_cols, n, 0, False)
            return acc * rho + f_n[:, None] * g_n[None, :]

        return jax.lax.fori_loop(0, terms, horner, jnp.zeros(rho.shape, rho.dtype))

    return run


def gram_rows(coef_rows: np.ndarray, coef_cols: np.ndarray, rho: np.ndarray, terms: int) -> np.ndarray:
    """<f(z_a) g(z_b)> = sum_n rho_ab^n f_n(v_a) g_n(v_b) for a block of rows (order 0).

    ``coef_rows`` (R, >= terms) and ``coef_cols`` (N, >= terms) from :func:`coefficient_tables`,
    ``rho`` (R, N) the correlations.
    """
    run = _gram_kernel(terms)
    return np.asarray(run(jnp.asarray(rho), jnp.asarray(coef_rows[:, :terms].T), jnp.asarray(coef_cols[:, :terms].T)))


def pair_series(spec: tuple, coefs, terms, pairs, var_a, var_b, rho):
    """<d_a^i d_b^j f(z_a) g(z_b)> for every (f, g, i, j) of ``spec`` and every pair (a, b) of ``pairs``.

    Traceable (call it inside ``jax.jit``). ``coefs`` (length, functions, samples): the stacked
    tables of :func:`coefficient_tables`, f and g index its functions; ``terms`` (may be traced)
    is the series length, at most length - max(i, j); ``pairs`` selects the samples along the
    last axis, ``pairs.first(v)`` (..., rows, 1) and ``pairs.second(v)`` (..., 1, cols) (a tile of
    pairs, :class:`ntkit.theory.pair_tables.Tile`); ``var_a``, ``var_b`` the (positive where
    derivatives are taken) variances of each pair's samples and ``rho`` (rows, cols) their
    correlations. Returns a list of len(spec) arrays (rows, cols).

    Each pass of the Horner loop slices _UNROLL rows of coefficients per sample side and derivative
    order, weights them (behind a barrier: once per row, not once per pair) and broadcasts them over
    the tile: no gathers (gathering them per pair made each term 3.4x slower).
    """
    n = np.arange(coefs.shape[0], dtype=float)
    rising = {i: np.exp(0.5 * (gammaln(n + i + 1.0) - gammaln(n + 1.0))) for i in range(5)}
    # the series grouped by derivative orders (i, j): a group's coefficients are rows of the
    # same two slices; the accumulator is kept in group order and put back in spec order at the end
    groups = sorted({(i, j) for _, _, i, j in spec})
    grouped = [s for group in groups for s, entry in enumerate(spec) if entry[2:] == group]
    weights = jnp.asarray(np.stack([rising[spec[s][2]] * rising[spec[s][3]] for s in grouped], -1))  # (length, spec)
    columns = {group: tuple(np.array([spec[s][side] for s in grouped if spec[s][2:] == group]) for side in (0, 1)) for group in groups}

    steps = (terms + _UNROLL - 1) // _UNROLL
    top = steps * _UNROLL - 1  # the first k, >= terms - 1; terms k >= terms are multiplied by 0

    def horner(step, acc):  # acc <- acc * rho + c_k f_(k+i)(a) g_(k+j)(b), for the _UNROLL values k = top - U step ... low
        low = top + 1 - (step + 1) * _UNROLL
        at_a = {i: pairs.first(jax.lax.dynamic_slice_in_dim(coefs, low + i, _UNROLL, 0)) for i, _ in groups}  # (U, functions, rows, 1)
        at_b = {j: pairs.second(jax.lax.dynamic_slice_in_dim(coefs, low + j, _UNROLL, 0)) for _, j in groups}
        k = low + jnp.arange(_UNROLL)
        weight = jnp.where((k < terms)[:, None], jax.lax.dynamic_slice_in_dim(weights, low, _UNROLL, 0), 0.0)  # (U, spec)
        rows = weight[:, :, None, None] * jnp.concatenate([at_a[i][:, columns[i, j][0]] for i, j in groups], axis=1)
        cols = jnp.concatenate([at_b[j][:, columns[i, j][1]] for i, j in groups], axis=1)
        # the weighted coefficient rows and columns are computed once, not once per pair of the tile
        rows, cols = jax.lax.optimization_barrier((rows, cols))
        for u in reversed(range(_UNROLL)):
            acc = acc * rho[None] + rows[u] * cols[u]
        return acc

    acc = jax.lax.fori_loop(0, steps, horner, jnp.zeros((len(spec),) + rho.shape, rho.dtype))
    at = np.argsort(grouped)  # row of each series of spec in acc
    return [acc[at[s]] * (var_a ** (-i / 2) * var_b ** (-j / 2)) if i or j else acc[at[s]] for s, (_, _, i, j) in enumerate(spec)]
