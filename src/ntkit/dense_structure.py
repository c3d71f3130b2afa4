"""Dense-layer structure of a model, for the ``"structured"`` empirical NTK.

A weight matrix W used once, in a product y = h @ (s W) (or (s W) @ h) with an input h that does
not depend on W, has a per-sample Jacobian that factorizes,

    d f_c / d W_ij = s sum_p h_{p i} g_{c p j},    g = d f / d y  (p runs over positions of h),

so its NTK contribution needs no Jacobian (Novak et al. 2022, "structured derivatives"):

    Theta^W_{a b, c d} = s^2 sum_{p q} (h_{a p} . h_{b q}) (g_{a c p} . g_{b d q}),

at a cost m1 m2 P^2 (n_in + C^2 n_out) per block instead of m1 m2 C^2 n_in n_out. The model is
traced once into a flat list of equations (nested ``jit`` calls inlined); every parameter leaf
that reaches exactly one ``dot_general`` through scalar multiplications and dtype conversions is
*factorized*; all other leaves (biases, convolution kernels, shared weights) keep their
per-sample Jacobians. :func:`structure` finds the factorized leaves; :func:`features` evaluates
the model with zero "probes" added to those products, so that one reverse pass per output gives
the cotangents g.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

__all__ = ["Structure", "structure", "features"]

_INLINED = ("pjit", "jit", "closed_call", "core_call")
_SCALINGS = ("mul", "convert_element_type")


@dataclass(frozen=True)
class _Equation:
    primitive: object
    params: dict
    inputs: tuple  # atom ids (int) or ("literal", value)
    outputs: tuple  # atom ids


@dataclass(frozen=True)
class _Product:
    """Leaf ``leaf`` (a matrix) enters equation ``equation`` (a dot_general) as operand ``side``
    (0: y = W @ h, 1: y = h @ W) after the scaling equations ``chain``; ``h_axis`` is the
    contracted axis of the other operand h."""

    leaf: int
    equation: int
    side: int
    h_axis: int
    chain: tuple


@dataclass(frozen=True)
class Structure:
    """The flat program of ``f(leaves, x_one)`` and its factorized dense products."""

    equations: tuple
    inputs: tuple  # ids of the parameter leaves, then of x
    outputs: tuple
    constants: dict  # id -> value
    products: tuple  # _Product per factorized leaf
    product_shapes: tuple = ()  # shape of each product's result y

    @property
    def factorized(self) -> frozenset[int]:
        return frozenset(p.leaf for p in self.products)


def structure(f: Callable, params, x_one) -> Structure:
    """Trace ``f(params, x_one)`` and find the factorized dense products."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    closed = jax.make_jaxpr(lambda ls, x: f(jax.tree_util.tree_unflatten(treedef, ls), x))(leaves, x_one)
    flat = _Flattener()
    inputs = tuple(flat.new() for _ in closed.jaxpr.invars)
    outputs = flat.inline(closed.jaxpr, [flat.constant(value) for value in closed.consts] + list(inputs))
    products = _find_products(flat.equations, inputs[:len(leaves)], outputs, flat.constants)
    products = tuple(p for p in products if np.ndim(leaves[p.leaf]) == 2)
    s = Structure(tuple(flat.equations), inputs, tuple(outputs), flat.constants, products)
    zeros = [jnp.zeros((), x_one.dtype) for _ in products]
    shapes = jax.eval_shape(lambda ls, x: features(s, ls, x, zeros)[3], leaves, x_one)
    return replace(s, product_shapes=tuple(y.shape for y in shapes))


def features(s: Structure, leaves, x_one, probes):
    """Outputs of the model on one sample with ``probes[k]`` added to product k's result; per
    product its other operand h, its scale s (the product of the scalars along the chain) and its
    result y."""
    env = dict(s.constants)
    env.update(zip(s.inputs, list(leaves) + [x_one]))
    at_equation = {p.equation: k for k, p in enumerate(s.products)}
    chain_scalars = {i: k for k, p in enumerate(s.products) for i in p.chain}
    others, results = [None] * len(s.products), [None] * len(s.products)
    scales = [jnp.ones((), dtype=x_one.dtype) for _ in s.products]
    read = lambda a: a[1] if isinstance(a, tuple) else env[a]
    for i, eq in enumerate(s.equations):
        values = [read(a) for a in eq.inputs]
        result = eq.primitive.bind(*values, **eq.primitive.get_bind_params(eq.params))
        result = result if eq.primitive.multiple_results else [result]
        if i in chain_scalars and eq.primitive.name == "mul":
            k = chain_scalars[i]
            scalar = values[1] if np.ndim(values[0]) else values[0]
            scales[k] = scales[k] * scalar
        if i in at_equation:
            k = at_equation[i]
            others[k] = values[1 - s.products[k].side]
            result = [result[0] + probes[k]]
            results[k] = result[0]
        env.update(zip(eq.outputs, result))
    return [read(a) for a in s.outputs], others, scales, results


class _Flattener:
    """Inlines nested ``jit`` calls into one list of equations over integer atom ids; closed-over
    constants (of the model and of inlined calls) get ids in ``constants``."""

    def __init__(self):
        self.equations: list[_Equation] = []
        self.constants: dict[int, object] = {}
        self.count = 0

    def new(self) -> int:
        self.count += 1
        return self.count

    def constant(self, value) -> int:
        self.constants[self.new()] = value
        return self.count

    def inline(self, jaxpr, args) -> list:
        env = dict(zip(jaxpr.constvars, args[:len(jaxpr.constvars)]))
        env.update(zip(jaxpr.invars, args[len(jaxpr.constvars):]))
        atom = lambda v: ("literal", v.val) if isinstance(v, jcore.Literal) else env[v]
        for eq in jaxpr.eqns:
            inner = eq.params.get("jaxpr", eq.params.get("call_jaxpr"))
            if eq.primitive.name in _INLINED and inner is not None:
                ids = [self.constant(value) for value in getattr(inner, "consts", [])]
                outs = self.inline(getattr(inner, "jaxpr", inner), ids + [atom(v) for v in eq.invars])
                env.update(zip(eq.outvars, outs))
                continue
            outs = tuple(self.new() for _ in eq.outvars)
            env.update(zip(eq.outvars, outs))
            self.equations.append(_Equation(eq.primitive, dict(eq.params), tuple(atom(v) for v in eq.invars), outs))
        return [atom(v) for v in jaxpr.outvars]


def _find_products(equations, leaf_ids, outputs, constants) -> tuple:
    uses: dict[int, list[int]] = {}
    for i, eq in enumerate(equations):
        for a in eq.inputs:
            if not isinstance(a, tuple):
                uses.setdefault(a, []).append(i)
    outputs = {a for a in outputs if not isinstance(a, tuple)}
    depends = _parameter_dependence(equations, leaf_ids)
    products = []
    for leaf_index, leaf in enumerate(leaf_ids):
        atom, chain = leaf, []
        while atom not in outputs and len(uses.get(atom, [])) == 1:
            i = uses[atom][0]
            eq = equations[i]
            if eq.primitive.name in _SCALINGS and _is_scaling(eq, atom, constants):
                chain.append(i)
                atom = eq.outputs[0]
                continue
            if eq.primitive.name == "dot_general" and eq.inputs.count(atom) == 1:
                product = _dense_product(eq, atom, leaf_index, i, tuple(chain), depends)
                if product is not None:
                    products.append(product)
            break
    return tuple(products)


def _is_scaling(eq, atom, constants) -> bool:
    """A dtype conversion, or a multiplication of ``atom`` by a scalar that depends on no parameter."""
    if eq.primitive.name == "convert_element_type":
        return True
    other = eq.inputs[1] if eq.inputs[0] == atom else eq.inputs[0]
    if isinstance(other, tuple):
        return np.ndim(other[1]) == 0
    return other in constants and np.ndim(constants[other]) == 0


def _dense_product(eq, atom, leaf_index, i, chain, depends):
    (lc, rc), (lb, rb) = eq.params["dimension_numbers"]
    side = eq.inputs.index(atom)
    other = eq.inputs[1 - side]
    contract_q, contract_h = (lc, rc) if side == 0 else (rc, lc)
    if lb or rb or len(contract_q) != 1 or not isinstance(other, int) or leaf_index in depends.get(other, ()):
        return None
    if side == 0 and contract_q[0] != 1 or side == 1 and contract_q[0] != 0:
        return None  # keep the output layout simple: lhs (n_out, n_in) @ h or h @ rhs (n_in, n_out)
    return _Product(leaf_index, i, side, contract_h[0], chain)


def _parameter_dependence(equations, leaf_ids) -> dict[int, frozenset]:
    """atom id -> indices of the parameter leaves it depends on."""
    depends = {leaf: frozenset([k]) for k, leaf in enumerate(leaf_ids)}
    for eq in equations:
        found = frozenset().union(*(depends.get(a, frozenset()) for a in eq.inputs if not isinstance(a, tuple)))
        if found:
            for out in eq.outputs:
                depends[out] = found
    return depends
