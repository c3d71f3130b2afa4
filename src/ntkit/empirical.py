"""Empirical NTK of any JAX model ``f(params, x)``.

For a model whose outputs on a batch are f(params, x) of shape (m,) or (m, C) and a pytree of
parameters theta, the empirical NTK is

    Theta_{a1 a2, c1 c2} = sum_p  d f_{a1 c1} / d theta_p  *  d f_{a2 c2} / d theta_p,

the kernel of gradient descent with learning rate 1 on every parameter (rescale a parameter's
learning rate by reparameterizing it). Two methods compute it (Novak et al. 2022,
arXiv:2206.08720):

* ``"jacobian"``: per-sample Jacobians J (m, C, P) by a vmapped reverse pass, contracted
  J1 J2^T; time ~ m1 m2 C^2 P, memory ~ (b1 + b2) C P for input blocks of b1, b2 samples;
* ``"ntvp"``: NTK-vector products Theta e_j = J1 (J2^T e_j), one vjp on a single sample of x2
  and one jvp through a block of x1 per column; time ~ m1 m2 C [FP] with [FP] the cost of one
  forward pass per sample, memory ~ P + activations (no Jacobian is stored);
* ``"structured"``: weight matrices used once in a dense product y = h @ (s W) contribute
  s^2 (h1 . h2)(g1 . g2) with g = df/dy (:mod:`ntkit.dense_structure`), other leaves their
  Jacobian contraction; time ~ m1 m2 (n_in + C^2 n_out) per dense layer.

``"auto"`` picks the cheapest per pair of samples of C^2 P, 3 C [FP] and the structured cost,
with [FP] from XLA's cost analysis (:func:`choose_method`): the structured path wins for MLPs,
NTVP for many outputs or when weights are shared across positions (convolutions).

The model must treat samples independently (no batch statistics): each sample is pushed through
``f`` as a batch of one. Inputs are split into blocks so that no step holds more than
``max_memory`` bytes of Jacobians; the result does not depend on the block sizes.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import dense_structure

__all__ = ["empirical_ntk", "choose_method", "METHODS"]

METHODS = ("auto", "jacobian", "ntvp", "structured")
DEFAULT_MEMORY = 2 * 2**30


def empirical_ntk(f: Callable, params, x1, x2=None, *, method: str = "auto", trace: bool = False,
                  max_memory: int = DEFAULT_MEMORY) -> np.ndarray:
    """The empirical NTK of ``f`` at ``params`` between inputs ``x1`` (m1, ...) and ``x2`` (m2, ...).

    Returns an array (m1, m2) for a model with outputs (m,), and (m1, m2, C, C) for outputs
    (m, C) — or (m1, m2), the trace over the output index sum_c Theta_{a1 a2, c c}, with
    ``trace=True``. ``x2=None`` means x2 = x1 (the symmetric kernel, computed once per block
    pair). ``method`` is "auto", "jacobian", "ntvp" or "structured"; ``max_memory`` (bytes)
    bounds the Jacobian (or feature) blocks held at once.

    >>> import jax.numpy as jnp
    >>> f = lambda p, x: x @ p["w"]
    >>> empirical_ntk(f, {"w": jnp.ones(3)}, jnp.eye(3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not (isinstance(max_memory, (int, np.integer)) and max_memory > 0):
        raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
    symmetric = x2 is None
    x1 = _inputs(x1, "x1")
    x2 = x1 if symmetric else _inputs(x2, "x2")
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 and x2 must have the same per-sample shape, got {x1.shape[1:]} and {x2.shape[1:]}")
    out = jax.eval_shape(lambda p, x: f(p, x), params, x1[:1])
    if len(out.shape) not in (1, 2) or out.shape[0] != 1:
        raise ValueError(f"f(params, x) must return shape (m,) or (m, C) for m inputs; got {out.shape} for one input")
    n_out = 1 if len(out.shape) == 1 else out.shape[1]
    n_params = sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params))
    if method == "auto":
        key = (f, _signature(params, x1[:1]), n_out)
        if key not in _CHOSEN:
            if len(_CHOSEN) >= 64:
                _CHOSEN.pop(next(iter(_CHOSEN)))
            _CHOSEN[key] = choose_method(f, params, x1[:1], n_out)
        method = _CHOSEN[key]
    itemsize = jnp.dtype(out.dtype).itemsize
    if method == "structured":
        kernel = _structured_kernel(f, params, x1[:1])
        block = _block_size(kernel.feature_size(n_out), itemsize, max_memory, max(len(x1), len(x2)))
    else:
        per_sample = 2 * n_out * n_params if method == "jacobian" else n_out * n_params
        block = _block_size(per_sample, itemsize, max_memory, max(len(x1), len(x2)))
        kernel = functools.partial(_jacobian_kernel if method == "jacobian" else _ntvp_kernel, f)
    theta = np.empty((len(x1), len(x2), n_out, n_out), dtype=np.result_type(out.dtype, np.float32))
    for i in range(0, len(x1), block):
        for j in range(0, len(x2), block):
            if symmetric and j < i:
                theta[i:i + block, j:j + block] = theta[j:j + block, i:i + block].transpose(1, 0, 3, 2)
                continue
            if symmetric and i == j and method == "jacobian":
                theta[i:i + block, j:j + block] = np.asarray(_jacobian_jit(f, True)(params, x1[i:i + block]))
            elif symmetric and i == j and method == "structured":
                theta[i:i + block, j:j + block] = np.asarray(kernel.same(params, x1[i:i + block]))
            else:
                theta[i:i + block, j:j + block] = np.asarray(kernel(params, x1[i:i + block], x2[j:j + block]))
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError("the empirical NTK has NaN or inf entries: check the model's outputs and gradients")
    if trace:
        return np.trace(theta, axis1=2, axis2=3)
    return theta[:, :, 0, 0] if len(out.shape) == 1 else theta


def choose_method(f: Callable, params, x_one, n_out: int) -> str:
    """The method of least cost per pair of samples: "jacobian" C^2 P, "ntvp" 3 C [FP] with [FP]
    the flops of one forward pass on one sample (XLA cost analysis), "structured" its
    contraction cost (dense products factorized, other leaves contracted)."""
    n_params = sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params))
    try:
        cost = jax.jit(f).lower(params, x_one).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        forward = float(cost.get("flops", 0.0))
    except Exception:  # cost analysis is backend dependent; fall back to the MLP estimate
        forward = 0.0
    forward = max(forward, 2.0 * n_params)
    costs = {"jacobian": n_out**2 * n_params, "ntvp": 3.0 * n_out * forward,
             "structured": _structured_kernel(f, params, x_one).pair_cost(n_out)}
    return min(costs, key=costs.get)


def _inputs(x, name: str):
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch of inputs with a leading sample axis, got shape {x.shape}")
    if jnp.issubdtype(x.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _block_size(per_sample: int, itemsize: int, max_memory: int, m: int) -> int:
    """Samples per block so that ``per_sample`` numbers per sample (two Jacobian blocks (b, C, P)
    for jacobian, b C parameter vectors for NTVP, the features for structured) fit max_memory."""
    per_sample = per_sample * itemsize
    block = max_memory // max(per_sample, 1)
    if block < 1:
        raise MemoryError(f"one sample's Jacobian needs {per_sample:,} bytes, more than max_memory={max_memory:,}")
    return int(min(block, m))


def _single(f):
    """f on one sample: x (...) -> outputs (C,)."""
    return lambda p, x: jnp.reshape(f(p, x[None]), (-1,))


def _jacobian_kernel(f, params, x1, x2):
    return _jacobian_jit(f)(params, x1, x2)


def _ntvp_kernel(f, params, x1, x2):
    return _ntvp_jit(f)(params, x1, x2)


@functools.lru_cache(maxsize=32)
def _jacobian_jit(f, diagonal: bool = False):
    """The jitted kernel of one block pair by Jacobian contraction (cached per model function);
    ``diagonal``: one block with itself, its Jacobian computed once."""
    per_sample = jax.vmap(jax.jacrev(_single(f)), in_axes=(None, 0))

    def contract(j1, j2):
        blocks = jax.tree_util.tree_map(lambda a, b: jnp.einsum("ic...,jd...->ijcd", a, b), j1, j2)
        return sum(jax.tree_util.tree_leaves(blocks))

    if diagonal:
        return jax.jit(lambda params, x: (lambda j: contract(j, j))(per_sample(params, x)))
    return jax.jit(lambda params, x1, x2: contract(per_sample(params, x1), per_sample(params, x2)))


@functools.lru_cache(maxsize=32)
def _ntvp_jit(f):
    """The jitted kernel of one block pair by NTK-vector products (cached per model function)."""
    single = _single(f)

    def kernel(params, x1, x2):
        out = jax.eval_shape(single, params, x2[0])
        basis = jnp.eye(out.shape[0], dtype=out.dtype)
        batch = lambda p: jax.vmap(single, in_axes=(None, 0))(p, x1)

        def columns(x_b):
            _, vjp = jax.vjp(lambda p: single(p, x_b), params)
            tangents = jax.vmap(lambda e: vjp(e)[0])(basis)  # J2^T e_c for each output c
            return jax.vmap(lambda t: jax.jvp(batch, (params,), (t,))[1])(tangents)  # (C2, m1, C1)

        cols = jax.lax.map(columns, x2)  # (m2, C2, m1, C1), one sample of x2 at a time
        return jnp.transpose(cols, (2, 0, 3, 1))

    return jax.jit(kernel)


class _StructuredKernel:
    """The "structured" kernel of one model signature: per-sample features (h, g of every
    factorized dense product; Jacobians of the other leaves), contracted block by block."""

    def __init__(self, f: Callable, params, x_one):
        self.s = dense_structure.structure(f, params, x_one)
        self.leaves = jax.tree_util.tree_leaves(params)
        factorized = self.s.factorized
        self.others = [k for k in range(len(self.leaves)) if k not in factorized]
        self.kernel = jax.jit(self._kernel)
        self.kernel_same = jax.jit(self._kernel_same)

    def pair_cost(self, n_out: int) -> float:
        """Flops per pair of samples: P^2 (n_in + C^2 n_out) per product, C^2 |leaf| otherwise."""
        cost = sum(n_out**2 * np.size(self.leaves[k]) for k in self.others)
        for p, shape in zip(self.s.products, self.s.product_shapes):
            n_in, n_o = np.shape(self.leaves[p.leaf])[::-1] if p.side == 0 else np.shape(self.leaves[p.leaf])
            positions = int(np.prod(shape)) // n_o
            cost += positions**2 * (n_in + n_out**2 * n_o)
        return float(cost)

    def feature_size(self, n_out: int) -> int:
        """Numbers held per sample (both blocks of a pair)."""
        size = sum(n_out * np.size(self.leaves[k]) for k in self.others)
        for p, shape in zip(self.s.products, self.s.product_shapes):
            n_in = np.shape(self.leaves[p.leaf])[1 - p.side]
            size += (int(np.prod(shape)) // np.shape(self.leaves[p.leaf])[p.side]) * n_in + n_out * int(np.prod(shape))
        return 2 * size

    def __call__(self, params, x1, x2):
        return self.kernel(jax.tree_util.tree_leaves(params), x1, x2)

    def same(self, params, x):
        """The kernel of a block with itself, its features computed once."""
        return self.kernel_same(jax.tree_util.tree_leaves(params), x)

    def _features(self, leaves, x):
        """One sample: H (P, n_in) scaled by s, G (C, P, n_out) per product; Jacobians of the others."""
        s = self.s
        zeros = [jnp.zeros(shape, x.dtype) for shape in s.product_shapes]

        def outputs(probes, other_leaves):
            full = list(leaves)
            for k, leaf in zip(self.others, other_leaves):
                full[k] = leaf
            return jnp.reshape(dense_structure.features(s, full, x[None], probes)[0][0], (-1,))

        g, jac = jax.jacrev(outputs, argnums=(0, 1))(zeros, [leaves[k] for k in self.others])
        _, hs, scales, _ = dense_structure.features(s, leaves, x[None], zeros)
        H, G = [], []
        for p, h, scale, gk in zip(s.products, hs, scales, g):
            n_o = np.shape(leaves[p.leaf])[p.side]
            H.append(scale * jnp.moveaxis(h, p.h_axis, -1).reshape(-1, h.shape[p.h_axis]))
            G.append((gk if p.side == 1 else jnp.moveaxis(gk, 1, -1)).reshape(gk.shape[0], -1, n_o))
        return H, G, jac

    def _kernel(self, leaves, x1, x2):
        per_sample = jax.vmap(self._features, in_axes=(None, 0))
        return self._contract(per_sample(leaves, x1), per_sample(leaves, x2))

    def _kernel_same(self, leaves, x):
        features = jax.vmap(self._features, in_axes=(None, 0))(leaves, x)
        return self._contract(features, features)

    @staticmethod
    def _contract(features1, features2):
        (H1, G1, J1), (H2, G2, J2) = features1, features2
        theta = sum(jnp.einsum("api,bqi,acpj,bdqj->abcd", h1, h2, g1, g2, optimize=True)
                    for h1, h2, g1, g2 in zip(H1, H2, G1, G2))
        theta = theta + sum(jnp.einsum("ac...,bd...->abcd", j1, j2) for j1, j2 in zip(J1, J2))
        return theta


def _signature(params, x_one) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return treedef, tuple((np.shape(a), jnp.result_type(a).name) for a in leaves), x_one.shape, x_one.dtype.name


_STRUCTURED: dict = {}
_CHOSEN: dict = {}  # (f, signature, C) -> the method "auto" chose


def _structured_kernel(f: Callable, params, x_one) -> _StructuredKernel:
    """The cached structured kernel of ``f`` for parameters and inputs of this shape."""
    key = (f, _signature(params, x_one))
    if key not in _STRUCTURED:
        if len(_STRUCTURED) >= 32:
            _STRUCTURED.pop(next(iter(_STRUCTURED)))
        _STRUCTURED[key] = _StructuredKernel(f, params, x_one)
    return _STRUCTURED[key]
