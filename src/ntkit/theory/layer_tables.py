"""All Gaussian tables one first-order step needs (first-order-mean.md §2), batched.

For kernels K of shape (batch, P, P) (P samples per problem) this returns, per batch element,

    S_ab = <s_a s_b>,  P_ab = <s'_a s'_b>,
    M_abcd = <s_a s_b s_c s_d>,  N_abcd = <s_a s_b s'_c s'_d>,  Q_abcd = <s'_a s'_b s'_c s'_d>,
    A2_ab;ij = <d_i d_j (s_a s_b)>,  A4_ab;ijkl = <d_i d_j d_k d_l (s_a s_b)>,
    B2, B4: the same for s'_a s'_b,   C_ac;i = <d_i (s_a s'_c)>,

each expectation taken on the marginal block of the *distinct* samples it involves (so a
repeated sample is one variable, never a singular block). Stein tables vanish unless every
derivative index is one of the samples of the function.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import numpy as np

from ..activations import Activation
from ..gaussian import expectation, product
from .tables import integrands

__all__ = ["LayerTables", "layer_tables"]


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class LayerTables:
    S: np.ndarray
    P: np.ndarray
    M: np.ndarray
    N: np.ndarray
    Q: np.ndarray | None
    A2: np.ndarray
    A4: np.ndarray
    B2: np.ndarray
    B4: np.ndarray
    C: np.ndarray


def layer_tables(activation: Activation, K: np.ndarray, with_stein: bool = True, nodes: int | None = None, with_q: bool = True) -> LayerTables:
    """Tables at kernels ``K`` (batch, P, P).

    ``with_stein=False`` zero-fills the derivative tables, which only multiply inherited
    (layer-l finite-width) statistics: the step from the exactly Gaussian layer 1 needs none,
    which is what makes antipodal or collinear inputs with c_b = 0 harmless there.
    ``with_q=False`` leaves Q out (``None``): only the NTK variance tensors A and B need it.
    """
    sigma, dsigma = integrands(activation)
    batch, P, _ = K.shape
    stein = {}
    for name, (f, g, order) in {"A2": (sigma, sigma, 2), "A4": (sigma, sigma, 4), "B2": (dsigma, dsigma, 2),
                                "B4": (dsigma, dsigma, 4), "C": (sigma, dsigma, 1)}.items():
        stein[name] = stein_table(f, g, K, order, nodes) if with_stein else np.zeros((batch, P, P) + (P,) * order)
    return LayerTables(
        S=moment_table((sigma, sigma), K, nodes),
        P=moment_table((dsigma, dsigma), K, nodes),
        M=moment_table((sigma,) * 4, K, nodes),
        N=moment_table((sigma, sigma, dsigma, dsigma), K, nodes),
        Q=moment_table((dsigma,) * 4, K, nodes) if with_q else None,
        **stein,
    )


def moment_table(slot_funcs: tuple, K: np.ndarray, nodes: int | None = None) -> np.ndarray:
    """T[b, a1..ar] = <f_1(z_a1) ... f_r(z_ar)> under N(0, K[b]) for every sample tuple.

    Tuples that are equal as multisets of (sample, function) share one integral; tuples whose
    per-sample functions agree are integrated in one batched call.
    """
    batch, P, _ = K.shape
    r = len(slot_funcs)
    slot_ids = _function_ids(slot_funcs)
    keys: dict[tuple, list[int]] = {}
    for flat, idx in enumerate(itertools.product(range(P), repeat=r)):
        keys.setdefault(tuple(sorted(zip(idx, slot_ids))), []).append(flat)

    groups: dict[tuple, list[tuple]] = {}
    for key in keys:
        samples = sorted({s for s, _ in key})
        funcs = tuple(product(*[slot_funcs[slot_ids.index(f)] for s2, f in key if s2 == s]) for s in samples)
        groups.setdefault(funcs, []).append((key, samples))

    table = np.empty((batch, P**r))
    for funcs, members in groups.items():
        sample_sets = np.array([samples for _, samples in members])  # (n_keys, k)
        blocks = K[:, sample_sets[:, :, None], sample_sets[:, None, :]]  # (batch, n_keys, k, k)
        values = expectation(funcs, blocks, nodes=nodes)
        for j, (key, _) in enumerate(members):
            table[:, keys[key]] = values[:, j : j + 1]
    return table.reshape((batch,) + (P,) * r)


def _function_ids(slot_funcs: tuple) -> list[int]:
    distinct: list = []
    ids = []
    for f in slot_funcs:
        if f not in distinct:
            distinct.append(f)
        ids.append(distinct.index(f))
    return ids


def stein_table(f, g, K: np.ndarray, order: int, nodes: int | None = None) -> np.ndarray:
    """T[b, a, c, i1..i_order] = <d_i1 .. d_i_order (f(z_a) g(z_c))> under N(0, K[b])."""
    batch, P, _ = K.shape
    table = np.zeros((batch, P, P) + (P,) * order)
    diag = expectation((product(f, g),), K[:, np.arange(P), np.arange(P)][:, :, None, None], order, nodes)
    for a in range(P):
        table[(slice(None), a, a) + (a,) * order] = diag[(slice(None), a) + (0,) * order]
    pairs = [(a, c) for a in range(P) for c in range(P) if a != c]
    if not pairs:
        return table
    idx = np.array(pairs)
    blocks = K[:, idx[:, :, None], idx[:, None, :]]
    values = expectation((f, g), blocks, order, nodes)  # (batch, n_pairs, 2, ..., 2)
    for j, (a, c) in enumerate(pairs):
        for local in itertools.product((0, 1), repeat=order):
            samples = tuple((a, c)[l] for l in local)
            table[(slice(None), a, c) + samples] = values[(slice(None), j) + local]
    return table
