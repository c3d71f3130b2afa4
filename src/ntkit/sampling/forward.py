"""Exact per-layer statistics of random networks: preactivations and the per-layer NTK.

For one network (parameters drawn from a counter-based key) the forward equations of the theory
specification give, with no autodiff,

    z^(1) = b^(1) + W^(1) x,                     Theta^(1)_{ij;ab} = delta_ij [lambda_b + lambda_w x_a.x_b / n_0],
    z^(l+1) = b + W sigma(z^(l)),
    Theta^(l+1)_{ij;ab} = delta_ij [lambda_b + (lambda_w / n_l) sum_k sigma_{k;a} sigma_{k;b}]
                          + sum_{k1 k2} W_{i k1} W_{j k2} sigma'_{k1;a} sigma'_{k2;b} Theta^(l)_{k1 k2;ab},

with b ~ N(0, c_b), W ~ N(0, c_w / n_l). Per layer the network is reduced to neuron-averaged
observables (i != j are distinct neurons, n neurons in the layer):

    Gz_ab = <z_{i;a} z_{i;b}>_i,                Gt_ab = <Theta_{ii;ab}>_i,
    Pzz_abcd = <z_{i;a} z_{i;b} z_{j;c} z_{j;d}>_{i!=j},   Pzt_abcd = <z_{i;a} z_{i;b} Theta_{jj;cd}>_{i!=j},
    Ptt_abcd = <Theta_{ii;ab} Theta_{jj;cd}>_{i!=j},
    Fo_acbd = <z_{i;a} z_{j;b} Theta_{ij;cd}>_{i!=j},    Bo_acbd = <Theta_{ij;ab} Theta_{ij;cd}>_{i!=j},

from which :mod:`ntkit.sampling.estimates` forms K, theta, V, D, F, A, B across networks. Pair
averages use sum_{i!=j} X_i Y_j = (sum X)(sum Y) - sum X_i Y_i.

``statistics="mean"`` keeps only Gz and Gt and never forms the n x n NTK: Gt of layer t is
averaged over its first r neurons (r = the number of output neurons, so all of the output layer),
each by backpropagation through the same network,

    Theta^(t)_{ii;ab} = sum_{l <= t} fresh^(l)_ab  g^(t,l)_{i;a} . g^(t,l)_{i;b},
    g^(t,t)_i = e_i,   g^(t,l-1)_{i;a} = (g^(t,l)_{i;a} W^(l)) * sigma'(z^(l-1)_a),

with fresh^(l)_ab = lambda_b + (lambda_w / n_(l-1)) sigma(z^(l-1)_a).sigma(z^(l-1)_b) (x at l = 1):
O(m r L n^2) per layer instead of O(m^2 n^3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..activations import get_activation

__all__ = ["NetworkSpec", "OBSERVABLES", "STATISTICS", "batch_observables", "flops_per_network"]

#: Per-network observables, each stacked over layers: two-sample (L, m, m), four-sample (L, m, m, m, m).
OBSERVABLES = ("Gz", "Gt", "Pzz", "Pzt", "Ptt", "Fo", "Bo")
#: What each choice of ``statistics`` computes per network.
STATISTICS = {"all": OBSERVABLES, "mean": ("Gz", "Gt")}


@dataclass(frozen=True)
class NetworkSpec:
    """Everything that fixes the random networks: widths n_0..n_L, hyperparameters, activation, dtype.

    ``widths`` includes the input dimension n_0 and the number of output neurons n_L.
    """

    widths: tuple[int, ...]
    activation: str
    c_b: tuple[float, ...]
    c_w: tuple[float, ...]
    lambda_b: tuple[float, ...]
    lambda_w: tuple[float, ...]
    dtype: str = "float64"

    @property
    def depth(self) -> int:
        return len(self.widths) - 1


def flops_per_network(widths: tuple[int, ...], m: int, statistics: str = "all") -> float:
    """Floating-point operations of one network, counted analytically (multiply-add = 2).

    Forward pass 2 m n_l n_(l-1). ``"all"``: NTK recursion per unordered sample pair a <= b
    (m (m + 1) / 2 of them) W (s' Theta s') W^T, two matmuls 2 n_(l-1)^2 n_l + 2 n_(l-1) n_l^2;
    observables dominated by the pair contractions of Fo, Bo (2 m^4 n^2 and 2 m^2 n^2 (m + 1)).
    ``"mean"``: R_l probes reach layer l (r per layer above it), overlaps 2 m^2 R_l n_l and the
    backward step 2 m R_l n_l n_(l-1).
    """
    total, probes = 0.0, 0
    for layer in range(len(widths) - 1, 0, -1):
        n_in, n = widths[layer - 1], widths[layer]
        total += 2.0 * m * n * n_in
        if statistics == "mean":
            probes += min(widths[-1], n)
            total += 2.0 * m * m * probes * n + (2.0 * m * probes * n * n_in if layer > 1 else 0.0)
            continue
        if layer > 1:
            total += m * (m + 1) / 2 * (2.0 * n_in * n_in * n + 2.0 * n_in * n * n)
        total += 2.0 * m**4 * n * n + 2.0 * m**3 * n * n + 2.0 * m**2 * n * n
    return total


def _layer_observables(z, T):
    """Neuron-averaged observables of one layer from z (n, m) and the NTK T[a, b, i, j] (m, m, n, n).

    The per-neuron products X_i = z_{i;a} z_{i;b} and Y_i = Theta_{ii;ab} are stacked as
    S_i = (X_i, Y_i); one Gram sum_i S_i S_i^T gives every same-neuron term the i != j averages
    subtract (XX, XY, YY), so Pzz, Pzt, Ptt, and the diagonal parts of Fo and Bo, share it.
    """
    n, m = z.shape
    q, pairs = m * m, n * (n - 1)
    X = (z[:, :, None] * z[:, None, :]).reshape(n, q)
    Y = jnp.moveaxis(jnp.diagonal(T, axis1=2, axis2=3), -1, 0).reshape(n, q)
    S = jnp.concatenate([X, Y], axis=1)  # (n, 2 q)
    total = S.sum(0)
    same = jnp.einsum("ip,iq->pq", S, S)
    distinct = (total[:, None] * total[None, :] - same) / pairs  # (2 q, 2 q): <S_i S_j>_{i != j}
    zT = jnp.einsum("ia,cdij->acdj", z, T)
    fo = jnp.einsum("acdj,jb->abcd", zT, z).reshape(q, q) - same[:q, q:]
    bo = jnp.einsum("abij,cdij->abcd", T, T).reshape(q, q) - same[q:, q:]

    def four(block):
        return block.reshape(m, m, m, m)

    def acbd(block):
        return jnp.transpose(four(block / pairs), (0, 2, 1, 3))

    return {
        "Gz": (total[:q] / n).reshape(m, m),
        "Gt": (total[q:] / n).reshape(m, m),
        "Pzz": four(distinct[:q, :q]),
        "Pzt": four(distinct[:q, q:]),
        "Ptt": four(distinct[q:, q:]),
        "Fo": acbd(fo),
        "Bo": acbd(bo),
    }


def _parameters(spec: NetworkSpec, key, layer: int):
    """W (n_l, n_(l-1)) ~ N(0, c_w / n_(l-1)) and b (n_l,) ~ N(0, c_b) of one layer of the network ``key``."""
    dtype = jnp.dtype(spec.dtype)
    n_in, n = spec.widths[layer - 1], spec.widths[layer]
    k_w, k_b = jax.random.split(jax.random.fold_in(key, layer))
    W = jax.random.normal(k_w, (n, n_in), dtype) * math.sqrt(spec.c_w[layer - 1] / n_in)
    b = jax.random.normal(k_b, (n,), dtype) * math.sqrt(spec.c_b[layer - 1])
    return W, b


def _fresh(spec: NetworkSpec, layer: int, h):
    """The NTK share of layer ``layer``'s own parameters, lambda_b + lambda_w h_a.h_b / n_(l-1) (m, m)."""
    return spec.lambda_b[layer - 1] + (spec.lambda_w[layer - 1] / h.shape[0]) * (h.T @ h)


def _network_observables(spec: NetworkSpec, x, key):
    """Observables of one network (stacked over layers) from its key and the inputs x (m, n_0)."""
    act = get_activation(spec.activation)
    sigma, dsigma = act.fn, act.derivative(1)
    dtype = jnp.dtype(spec.dtype)
    m = x.shape[0]
    per_layer = []
    upper_a, upper_b = np.triu_indices(m)  # sample pairs a <= b; Theta_{ij;ba} = Theta_{ji;ab}
    slot = np.zeros((m, m), dtype=int)
    slot[upper_a, upper_b] = slot[upper_b, upper_a] = np.arange(upper_a.size)
    transpose = jnp.asarray((np.arange(m)[:, None] > np.arange(m)[None, :])[:, :, None, None])
    h, T, sp = x.T, None, None  # h: the previous layer's sigma(z) as (n_in, m)
    for layer in range(1, spec.depth + 1):
        n = spec.widths[layer]
        W, b = _parameters(spec, key, layer)
        z = W @ h + b[:, None]
        T_pairs = _fresh(spec, layer, h)[upper_a, upper_b][:, None, None] * jnp.eye(n, dtype=dtype)[None, :, :]  # (pairs, n, n)
        if T is not None:
            inner = sp.T[upper_a][:, :, None] * T[upper_a, upper_b] * sp.T[upper_b][:, None, :]
            left = jnp.tensordot(W, inner, axes=[[1], [1]])  # (n, pairs, n_in)
            T_pairs = T_pairs + jnp.moveaxis(jnp.tensordot(left, W, axes=[[2], [1]]), 0, 1)
        full = T_pairs[slot]
        T = jnp.where(transpose, jnp.swapaxes(full, -1, -2), full)
        per_layer.append(_layer_observables(z, T))
        h, sp = sigma(z), dsigma(z)
    return {name: jnp.stack([obs[name] for obs in per_layer]).astype(jnp.float64) for name in OBSERVABLES}


def _network_means(spec: NetworkSpec, x, key):
    """Gz and Gt of one network (stacked over layers), Gt by backpropagating probe neurons."""
    act = get_activation(spec.activation)
    sigma, dsigma = act.fn, act.derivative(1)
    dtype = jnp.dtype(spec.dtype)
    m, r = x.shape[0], spec.widths[-1]
    h, weights, fresh, slopes, gz = x.T, {}, {}, {}, []
    for layer in range(1, spec.depth + 1):
        W, b = _parameters(spec, key, layer)
        z = W @ h + b[:, None]
        weights[layer], fresh[layer] = W, _fresh(spec, layer, h)
        gz.append(z.T @ z / z.shape[0])
        h, slopes[layer] = sigma(z), dsigma(z).T  # slopes: sigma'(z^(l)) as (m, n_l)
    G, theta, probes = None, None, {}  # G (m, R, n_l): d z^(t)_i / d z^(l) of the R probes so far
    for layer in range(spec.depth, 0, -1):
        n = spec.widths[layer]
        count, start = min(r, n), 0 if G is None else G.shape[1]
        probes[layer] = slice(start, start + count)
        new = jnp.broadcast_to(jnp.eye(count, n, dtype=dtype), (m, count, n))
        G = new if G is None else jnp.concatenate([G, new], axis=1)
        zeros = jnp.zeros((count, m, m), dtype)
        theta = zeros if theta is None else jnp.concatenate([theta, zeros])
        theta = theta + fresh[layer][None] * jnp.einsum("apk,bpk->pab", G, G)
        if layer > 1:
            G = jnp.einsum("apk,kj->apj", G, weights[layer]) * slopes[layer - 1][:, None, :]
    gt = [theta[probes[layer]].mean(0) for layer in range(1, spec.depth + 1)]
    return {"Gz": jnp.stack(gz).astype(jnp.float64), "Gt": jnp.stack(gt).astype(jnp.float64)}


_PER_NETWORK = {"all": _network_observables, "mean": _network_means}


@partial(jax.jit, static_argnums=(0, 1))
def _blocks(spec: NetworkSpec, statistics: str, x, seed, indices):
    """Observables of the networks indices (k, block), block after block (lax.map, k >= 2)."""
    base = jax.random.PRNGKey(seed)
    per_network = _PER_NETWORK[statistics]

    def block(idx):
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(idx)
        return jax.vmap(lambda key: per_network(spec, x, key))(keys)

    return jax.lax.map(block, indices)


def batch_observables(spec: NetworkSpec, x: np.ndarray, seed: int, first: int, count: int, block: int,
                      capacity: int | None = None, statistics: str = "all") -> dict[str, np.ndarray]:
    """Observables ``STATISTICS[statistics]`` (count, L, ...) of networks first..first+count-1, float64 numpy.

    Network ``k`` draws its parameters from ``fold_in(PRNGKey(seed), k)`` (then ``fold_in`` by
    layer). XLA's CPU code rounds differently for different array shapes, so the networks are
    always computed by the same compiled block of ``block`` networks, mapped over at least two
    blocks (a one-block map is compiled differently); how many blocks one call holds does not
    change any network's numbers. A call computes room for ``capacity`` networks (default
    ``count``) rounded up to a power of two blocks, the excess discarded: callers pass their
    batch size so that a short last batch reuses the compiled program instead of compiling another.
    """
    capacity = max(count, capacity or count)
    k = max(2, 1 << (-(-capacity // block) - 1).bit_length())  # a power of two: few compiled shapes
    indices = np.arange(first, first + k * block, dtype=np.uint32).reshape(k, block)
    xj = jnp.asarray(x, dtype=jnp.dtype(spec.dtype))
    out = _blocks(spec, statistics, xj, jnp.uint32(seed), jnp.asarray(indices))
    return {name: np.asarray(value).reshape((k * block,) + value.shape[2:])[:count] for name, value in out.items()}
