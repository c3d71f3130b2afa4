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
  forward pass per sample, memory ~ P + activations (no Jacobian is stored).

``"auto"`` compares the two costs per pair of samples, C^2 P and 3 C [FP], with [FP] from XLA's
cost analysis (:func:`choose_method`): the contraction wins for MLPs with few outputs, NTVP for
many outputs or when weights are shared across positions (convolutions).

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

__all__ = ["empirical_ntk", "choose_method", "METHODS"]

METHODS = ("auto", "jacobian", "ntvp")
DEFAULT_MEMORY = 2 * 2**30


def empirical_ntk(f: Callable, params, x1, x2=None, *, method: str = "auto", trace: bool = False,
                  max_memory: int = DEFAULT_MEMORY) -> np.ndarray:
    """The empirical NTK of ``f`` at ``params`` between inputs ``x1`` (m1, ...) and ``x2`` (m2, ...).

    Returns an array (m1, m2) for a model with outputs (m,), and (m1, m2, C, C) for outputs
    (m, C) — or (m1, m2), the trace over the output index sum_c Theta_{a1 a2, c c}, with
    ``trace=True``. ``x2=None`` means x2 = x1 (the symmetric kernel, computed once per block
    pair). ``method`` is "auto", "jacobian" or "ntvp"; ``max_memory`` (bytes) bounds the
    Jacobian blocks held at once.

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
        method = choose_method(f, params, x1[:1], n_out)
    itemsize = jnp.dtype(out.dtype).itemsize
    block = _block_size(method, n_out, n_params, itemsize, max_memory, max(len(x1), len(x2)))
    kernel = _jacobian_kernel if method == "jacobian" else _ntvp_kernel
    theta = np.empty((len(x1), len(x2), n_out, n_out), dtype=np.result_type(out.dtype, np.float32))
    for i in range(0, len(x1), block):
        for j in range(0, len(x2), block):
            if symmetric and j < i:
                theta[i:i + block, j:j + block] = theta[j:j + block, i:i + block].transpose(1, 0, 3, 2)
                continue
            if symmetric and i == j and method == "jacobian":
                theta[i:i + block, j:j + block] = np.asarray(_jacobian_jit(f, True)(params, x1[i:i + block]))
            else:
                theta[i:i + block, j:j + block] = np.asarray(kernel(f, params, x1[i:i + block], x2[j:j + block]))
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError("the empirical NTK has NaN or inf entries: check the model's outputs and gradients")
    if trace:
        return np.trace(theta, axis1=2, axis2=3)
    return theta[:, :, 0, 0] if len(out.shape) == 1 else theta


def choose_method(f: Callable, params, x_one, n_out: int) -> str:
    """"jacobian" if the contraction cost per pair of samples, C^2 P, is at most the NTVP cost
    C [FP], with [FP] the flops of one forward pass on one sample (XLA cost analysis); else "ntvp"."""
    n_params = sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params))
    try:
        cost = jax.jit(f).lower(params, x_one).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        forward = float(cost.get("flops", 0.0))
    except Exception:  # cost analysis is backend dependent; fall back to the MLP estimate
        forward = 0.0
    forward = max(forward, 2.0 * n_params)
    return "jacobian" if n_out * n_params <= 3.0 * forward else "ntvp"


def _inputs(x, name: str):
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch of inputs with a leading sample axis, got shape {x.shape}")
    if jnp.issubdtype(x.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _block_size(method: str, n_out: int, n_params: int, itemsize: int, max_memory: int, m: int) -> int:
    """Samples per block: two Jacobian blocks (b, C, P) within max_memory (jacobian); for NTVP
    the vmapped tangents (b C parameter vectors) within max_memory."""
    per_sample = 2 * n_out * n_params * itemsize if method == "jacobian" else n_out * n_params * itemsize
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
