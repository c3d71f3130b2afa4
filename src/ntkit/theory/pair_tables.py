"""Layer tables of every two-sample sub-problem {a, b} of a Gram matrix at once (the mean path).

The tables of :mod:`ntkit.theory.layer_tables` restricted to the samples (a, b) are built from

* one-sample integrals on the diagonal, one per input (never one per pair);
* S and P from the Gram matrices (closed forms or Mehler, :func:`ntkit.theory.tables.two_point`);
* two-sample integrals <d_a^i d_b^j f(z_a) g(z_b)> by Mehler's series with one table of Hermite
  coefficients per input (``ntkit.mehler.pair_series``), all series of a chunk of pairs in one
  jitted sum;
* for activations with a smooth closed form (erf, gelu) the Stein tables by Price's theorem:
  with G(kaa, kbb, kab) = <sigma_a sigma_b>,

      <d_a d_a F> = 2 dG/dkaa,   <d_a d_b F> = dG/dkab,   <d_a^4 F> = 4 d2G/dkaa2,
      <d_a^3 d_b F> = 2 d2G/dkaa dkab,   <d_a^2 d_b^2 F> = d2G/dkab2,   <sigma_a sigma''_b> = 2 dG/dkbb,

  and the same for sigma' with P = <sigma'_a sigma'_b>, by autodiff of the closed forms.

Piecewise-linear activations (and an explicit ``nodes``) fall back to
:func:`ntkit.theory.layer_tables.layer_tables` on the 2 x 2 blocks. Only the tables the mean
path needs are built: Q is left out.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from ..activations import Activation
from ..gaussian import PiecewiseMonomial, expectation, product
from ..mehler import coefficient_tables, pair_series
from .layer_tables import LayerTables, layer_tables
from .tables import integrands, two_point

__all__ = ["PairTables"]

_PAD = 4096  # chunks are padded to a multiple of this (one compilation per size)
_TERMS_STEP = 64
_TAIL = 1e-14


def _counts(index: tuple) -> tuple[int, int]:
    return index.count(0), index.count(1)


class PairTables:
    """Per-layer precomputation at the Gram matrix K (m, m); :meth:`tables` gives LayerTables for pairs."""

    def __init__(self, activation: Activation, K: np.ndarray, with_stein: bool = True, nodes: int | None = None):
        self.activation, self.K, self.with_stein, self.nodes = activation, K, with_stein, nodes
        sigma, dsigma = self.sigma, self.dsigma = integrands(activation)
        self.var = np.diagonal(K).copy()
        self.generic = isinstance(sigma, PiecewiseMonomial) or nodes is not None
        if self.generic:
            return
        self.S, self.P = two_point(activation, K)
        s2, d2 = product(sigma, sigma), product(dsigma, dsigma)
        one_d = self.var[:, None, None]
        self.M_diag = expectation((product(s2, s2),), one_d)
        self.N_diag = expectation((product(s2, d2),), one_d)
        m_pairs = [(product(s2, sigma), sigma), (s2, s2), (sigma, product(s2, sigma))]
        n_pairs = {(p, q): (_power(sigma, dsigma, p, q), _power(sigma, dsigma, 2 - p, 2 - q)) for p in range(3) for q in range(3) if (p, q) not in ((0, 0), (2, 2))}
        self.spec = [(f, g, 0, 0) for f, g in m_pairs] + [(f, g, 0, 0) for f, g in n_pairs.values()]
        self.n_keys = list(n_pairs)
        self.closed = activation.pair_functions() if with_stein else None
        if with_stein:
            self.stein_diag = {
                "A2": expectation((s2,), one_d, 2)[:, 0, 0],
                "A4": expectation((s2,), one_d, 4)[:, 0, 0, 0, 0],
                "B2": expectation((d2,), one_d, 2)[:, 0, 0],
                "B4": expectation((d2,), one_d, 4)[:, 0, 0, 0, 0],
                "C": expectation((product(sigma, dsigma),), one_d, 1)[:, 0],
            }
            if self.closed is None:
                for f, g, order in ((sigma, sigma, 2), (sigma, sigma, 4), (dsigma, dsigma, 2), (dsigma, dsigma, 4)):
                    self.spec += [(f, g, i, order - i) for i in range(order, -1, -1)]
                self.spec += [(sigma, dsigma, 1, 0), (sigma, dsigma, 0, 1), (dsigma, sigma, 1, 0), (dsigma, sigma, 0, 1)]
        found = coefficient_tables([(f, g, i + j) for f, g, i, j in self.spec], self.var)
        if found is None:  # the series do not converge: 2-D quadrature on the blocks
            self.generic = True
            return
        self.coef, self.terms = found
        top = {h: np.abs(t).max(axis=0) for h, t in self.coef.items()}
        n = np.arange(self.terms)
        self.profile = np.max([top[f][n + i] * top[g][n + j] * (1.0 + n) ** ((i + j) / 2) for f, g, i, j in self.spec], axis=0)

    def terms_for(self, rho_max: float) -> int:
        """Series length for pairs with |rho| <= rho_max: terms rho^n f_n g_n below 1e-14 of the largest.

        At rho_max = 1 this is the length that passed the tail test; rounded up to a multiple of
        ``_TERMS_STEP`` (one compilation each).
        """
        n = np.arange(self.terms)
        with np.errstate(divide="ignore"):
            weighted = self.profile * np.exp(n * np.log(max(rho_max, 1e-300)))
        above = np.nonzero(weighted > _TAIL * self.profile.max())[0]
        needed = above.max() + 16 if above.size else 16
        return int(min(self.terms, -(-needed // _TERMS_STEP) * _TERMS_STEP))

    def tables(self, ia: np.ndarray, ib: np.ndarray) -> LayerTables:
        """Tables of the two-sample problems {ia[z], ib[z]} (batch z, P = 2)."""
        pair = np.stack([ia, ib], -1)
        blocks = self.K[pair[:, :, None], pair[:, None, :]]
        if self.generic:
            return layer_tables(self.activation, blocks, with_stein=self.with_stein, nodes=self.nodes, with_q=False)
        n = ia.size
        padded = -(-n // _PAD) * _PAD
        pa, pb = np.pad(ia, (0, padded - n)), np.pad(ib, (0, padded - n))
        va, vb = self.var[pa], self.var[pb]
        denom = np.sqrt(va * vb)
        rho = np.clip(np.where(denom > 0, self.K[pa, pb] / np.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)
        terms = self.terms_for(float(np.abs(rho[:n]).max()))
        values = pair_series(self.spec, self.coef, terms, self.var, pa, pb, rho)[:, :n]
        S, P = self.S[pair[:, :, None], pair[:, None, :]], self.P[pair[:, :, None], pair[:, None, :]]

        m_values = np.stack([self.M_diag[ia], values[0], values[1], values[2], self.M_diag[ib]], -1)
        M = m_values[:, _M_MAP]
        n_cols = {(2, 2): self.N_diag[ia], (0, 0): self.N_diag[ib]}
        n_cols.update({key: values[3 + k] for k, key in enumerate(self.n_keys)})
        N = np.stack([n_cols[key] for key in _N_KEYS], -1)[:, _N_MAP]
        shape4 = (n, 2, 2, 2, 2)
        if not self.with_stein:
            zeros = np.zeros
            return LayerTables(S, P, M.reshape(shape4), N.reshape(shape4), None, zeros(shape4), zeros((n,) + (2,) * 6), zeros(shape4), zeros((n,) + (2,) * 6), zeros((n, 2, 2, 2)))
        if self.closed is not None:
            stein = np.asarray(_closed_stein(*self.closed)(jnp.asarray(va), jnp.asarray(vb), jnp.asarray(self.K[pa, pb])))[:, :n]
        else:
            stein = values[10:]
        d = self.stein_diag
        A2 = _stein_dense(stein[0:3], d["A2"][ia], d["A2"][ib], 2)
        A4 = _stein_dense(stein[3:8], d["A4"][ia], d["A4"][ib], 4)
        B2 = _stein_dense(stein[8:11], d["B2"][ia], d["B2"][ib], 2)
        B4 = _stein_dense(stein[11:16], d["B4"][ia], d["B4"][ib], 4)
        C = np.zeros((n, 2, 2, 2))
        C[:, 0, 0, 0], C[:, 1, 1, 1] = d["C"][ia], d["C"][ib]
        C[:, 0, 1, 0], C[:, 0, 1, 1], C[:, 1, 0, 0], C[:, 1, 0, 1] = stein[16], stein[17], stein[18], stein[19]
        return LayerTables(S, P, M.reshape(shape4), N.reshape(shape4), None, A2, A4, B2, B4, C)


def _power(sigma, dsigma, p: int, q: int):
    return product(*([sigma] * p + [dsigma] * q))


_SLOTS4 = list(itertools.product((0, 1), repeat=4))
_M_MAP = np.array([idx.count(1) for idx in _SLOTS4])  # columns: a^4, a^3 b, a^2 b^2, a b^3, b^4
_N_KEYS = [(p, q) for p in range(3) for q in range(3)]
# N_abcd = <s_a s_b s'_c s'_d>: sample 0 carries sigma^p sigma'^q with p = #{a, b = 0}, q = #{c, d = 0}
_N_MAP = np.array([_N_KEYS.index((idx[:2].count(0), idx[2:].count(0))) for idx in _SLOTS4])


def _stein_dense(splits: np.ndarray, diag_a: np.ndarray, diag_b: np.ndarray, order: int) -> np.ndarray:
    """T[z, a, c, i...] from the split values (derivatives on sample 0, sample 1) = (order, 0), ..., (0, order).

    Off the diagonal (a != c) every index is a sample of the function, so the entry is the split
    with that many indices on sample 0 (sigma sigma and sigma' sigma' are symmetric in a, c); on
    the diagonal only i = ... = a survives, the one-sample value.
    """
    n = diag_a.size
    out = np.zeros((n, 2, 2) + (2,) * order)
    for idx in itertools.product((0, 1), repeat=order):
        value = splits[idx.count(1)]
        out[(slice(None), 0, 1) + idx] = value
        out[(slice(None), 1, 0) + idx] = value
    out[(slice(None), 0, 0) + (0,) * order] = diag_a
    out[(slice(None), 1, 1) + (1,) * order] = diag_b
    return out


@functools.lru_cache(maxsize=None)
def _closed_stein(G, P):
    """Stein splits of sigma sigma (orders 2, 4), sigma' sigma' (2, 4) and the C entries, by Price's theorem."""

    def splits(E):
        grad = jax.grad(E, argnums=(0, 1, 2))
        hess = jax.hessian(E, argnums=(0, 1, 2))

        def one(a, b, c):
            (ga, gb, gc), h = grad(a, b, c), hess(a, b, c)
            second = [2 * ga, gc, 2 * gb]
            fourth = [4 * h[0][0], 2 * h[0][2], h[2][2], 2 * h[1][2], 4 * h[1][1]]
            return second, fourth, gb, ga

        return one

    g_splits, p_splits = splits(G), splits(P)

    def one(a, b, c):
        g2, g4, g_b, g_a = g_splits(a, b, c)
        p2, p4, _, _ = p_splits(a, b, c)
        dd = P(a, b, c)
        # C: (sigma on 0, sigma' on 1) with d_0, d_1; then (sigma' on 0, sigma on 1) with d_0, d_1
        return jnp.stack(g2 + g4 + p2 + p4 + [dd, 2 * g_b, 2 * g_a, dd])

    return jax.jit(jax.vmap(one, out_axes=1))
