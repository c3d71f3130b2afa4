"""All Gaussian tables one first-order step needs (first-order-mean.md §2), batched.

For kernels K of shape (P, P, batch) (P samples per problem, the batch axis last as in
:mod:`ntkit.theory.first_order`) this returns, per batch element,

    S_ab = <s_a s_b>,  P_ab = <s'_a s'_b>,
    M_abcd = <s_a s_b s_c s_d>,  N_abcd = <s_a s_b s'_c s'_d>,  Q_abcd = <s'_a s'_b s'_c s'_d>,
    A2_ab;ij = <d_i d_j (s_a s_b)>,  A4_ab;ijkl = <d_i d_j d_k d_l (s_a s_b)>,
    B2, B4: the same for s'_a s'_b,   C_ac;i = <d_i (s_a s'_c)>,

each expectation taken on the marginal block of the *distinct* samples it involves (so a
repeated sample is one variable, never a singular block). Stein tables vanish unless every
derivative index is one of the samples of the function.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import jax
import numpy as np

from ..activations import Activation
from ..gaussian import expectation, expectations, product
from .tables import integrands, kinked

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


def layer_tables(activation: Activation, K: np.ndarray, with_stein: bool = True, nodes: int | None = None, with_q: bool = True,
                 on_line: np.ndarray | None = None) -> LayerTables:
    """Tables at kernels ``K`` (P, P, batch), each with the batch axis last.

    ``with_stein=False`` zero-fills the derivative tables, which only multiply inherited
    (layer-l finite-width) statistics: the step from the exactly Gaussian layer 1 needs none,
    which is what makes antipodal or collinear inputs with c_b = 0 harmless there.
    ``with_q=False`` leaves Q out (``None``): only the NTK variance tensors A and B need it.
    ``on_line`` (P, P, batch) marks pairs a kinked activation's Stein tables take as exactly collinear
    (:func:`ntkit.theory.tables.collinear_pairs`).
    """
    sigma, dsigma = integrands(activation)
    K = np.moveaxis(K, -1, 0)  # the quadratures below take the batch axis first
    on_line = None if on_line is None else np.moveaxis(on_line, -1, 0)
    batch, samples, _ = K.shape
    stein = {}
    for name, (f, g, order) in {"A2": (sigma, sigma, 2), "A4": (sigma, sigma, 4), "B2": (dsigma, dsigma, 2),
                                "B4": (dsigma, dsigma, 4), "C": (sigma, dsigma, 1)}.items():
        stein[name] = stein_table(f, g, K, order, nodes, on_line) if with_stein else np.zeros((batch,) + (samples,) * (order + 2))
    slot_funcs = [(sigma, sigma), (dsigma, dsigma), (sigma,) * 4, (sigma, sigma, dsigma, dsigma)] + ([(dsigma,) * 4] if with_q else [])
    S, P, M, N, *Q = moment_tables(slot_funcs, K, nodes)
    tables = LayerTables(S=S, P=P, M=M, N=N, Q=Q[0] if with_q else None, **stein)
    return jax.tree_util.tree_map(lambda table: np.moveaxis(table, 0, -1), tables)


def moment_tables(slot_funcs_list: list[tuple], K: np.ndarray, nodes: int | None = None) -> list[np.ndarray]:
    """For each slot_funcs (f_1..f_r): T[b, a1..ar] = <f_1(z_a1) ... f_r(z_ar)> under N(0, K[b]) for every sample tuple.

    Tuples that are equal as multisets of (sample, function) share one integral. Each integral
    is taken over its distinct samples, with the product of the functions each sample carries;
    all integrals on the same sample sets are done in one :func:`~ntkit.gaussian.expectations`
    call (e.g. M, N and Q on four distinct samples: eight products at the same nodes).
    """
    batch, P, _ = K.shape
    slot_funcs_list = tuple(tuple(slot_funcs) for slot_funcs in slot_funcs_list)
    tables = [np.empty((batch, P ** len(slot_funcs))) for slot_funcs in slot_funcs_list]
    for family, sets, scatter in _moment_plan(slot_funcs_list, P):
        values = np.stack(expectations(family, K[:, sets[:, :, None], sets[:, None, :]], nodes=nodes), -1)  # (batch, n_sets, len(family))
        for table, (flat, set_index, member) in scatter.items():
            tables[table][:, flat] = values[:, set_index, member]
    return [table.reshape((batch,) + (P,) * len(slot_funcs)) for table, slot_funcs in zip(tables, slot_funcs_list)]


@functools.lru_cache(maxsize=64)
def _moment_plan(slot_funcs_list: tuple, P: int) -> list[tuple]:
    """(family, sample sets (n_sets, k), {table: (flat entries, their set, their family member)}) per call of
    :func:`moment_tables`: the bookkeeping depends on the functions and P only, not on K."""
    rank = {f: i for i, f in enumerate(dict.fromkeys(f for slot_funcs in slot_funcs_list for f in slot_funcs))}
    needed: dict[tuple, dict[tuple, list[tuple[int, int]]]] = {}  # samples -> per-sample functions -> (table, flat index)
    for table, slot_funcs in enumerate(slot_funcs_list):
        for flat, idx in enumerate(itertools.product(range(P), repeat=len(slot_funcs))):
            samples = tuple(sorted(set(idx)))
            funcs = tuple(product(*sorted((f for a, f in zip(idx, slot_funcs) if a == s), key=rank.get)) for s in samples)
            needed.setdefault(samples, {}).setdefault(funcs, []).append((table, flat))

    families: dict[tuple, list[tuple]] = {}  # sample sets needing the same products share a call
    for samples, wanted in needed.items():
        families.setdefault(tuple(wanted), []).append(samples)

    plan = []
    for family, sample_sets in families.items():
        entries: dict[int, list[tuple[int, int, int]]] = {}
        for j, samples in enumerate(sample_sets):
            for t, funcs in enumerate(family):
                for table, flat in needed[samples][funcs]:
                    entries.setdefault(table, []).append((flat, j, t))
        scatter = {table: tuple(np.array(column) for column in zip(*rows)) for table, rows in entries.items()}
        plan.append((family, np.array(sample_sets), scatter))
    return plan


def stein_table(f, g, K: np.ndarray, order: int, nodes: int | None = None, on_line: np.ndarray | None = None) -> np.ndarray:
    """T[b, a, c, i1..i_order] = <d_i1 .. d_i_order (f(z_a) g(z_c))> under N(0, K[b]); collinear pairs (singular,
    or marked in ``on_line`` (batch, P, P) with f or g kinked) along their line."""
    batch, P, _ = K.shape
    table = np.zeros((batch, P, P) + (P,) * order)
    diag = expectation((product(f, g),), K[:, np.arange(P), np.arange(P)][:, :, None, None], order, nodes, singular="range")
    for a in range(P):
        table[(slice(None), a, a) + (a,) * order] = diag[(slice(None), a) + (0,) * order]
    pairs = [(a, c) for a in range(P) for c in range(P) if a != c]
    if not pairs:
        return table
    idx = np.array(pairs)
    blocks = K[:, idx[:, :, None], idx[:, None, :]]
    if on_line is not None and kinked(f, g):
        blocks = _onto_line(blocks, on_line[:, idx[:, 0], idx[:, 1]])
    values = expectation((f, g), blocks, order, nodes, singular="range")  # (batch, n_pairs, 2, ..., 2); collinear pairs along their line
    for j, (a, c) in enumerate(pairs):
        for local in itertools.product((0, 1), repeat=order):
            samples = tuple((a, c)[l] for l in local)
            table[(slice(None), a, c) + samples] = values[(slice(None), j) + local]
    return table


def _onto_line(blocks: np.ndarray, on_line: np.ndarray) -> np.ndarray:
    """The 2 x 2 blocks marked in ``on_line`` made exactly collinear (rank 1, the larger variance kept)."""
    kaa, kbb, kab = blocks[..., 0, 0], blocks[..., 1, 1], blocks[..., 0, 1]
    top = np.maximum(kaa, kbb)
    near = on_line & (top > 0)
    if not np.any(near):
        return blocks
    blocks = blocks.copy()
    larger_a = kaa >= kbb
    line = kab**2 / np.where(near, top, 1.0)
    blocks[..., 1, 1] = np.where(near & larger_a, line, kbb)
    blocks[..., 0, 0] = np.where(near & ~larger_a, line, kaa)
    return blocks
