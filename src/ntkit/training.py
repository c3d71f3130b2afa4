"""Real training of MLPs by full-batch gradient descent on MSE, to hold the kernel predictions against.

Weights and biases are drawn N(0, 1); the width and the variances enter the forward pass as
multipliers (hidden width n, input dimension n_0, hyperparameters of layer l from the ``MLP``):

NTK parameterization ("ntk"), every layer l = 1..L (n_(l-1) its fan-in):

    z^(l) = sqrt(c_b) b^(l) + sqrt(c_w / n_(l-1)) W^(l) sigma(z^(l-1)),       sigma(z^(0)) := x,

trained with the same learning rate eta on every parameter. Its NTK is ntkit's ``theta`` of the
MLP with lambda_b = c_b and lambda_w = c_w (README "Conventions"): d z / d b = sqrt(c_b) and
d z_i / d W_ij = sqrt(c_w / n) sigma_j.

Maximal-update parameterization ("mup", the mean-field scaling of Yang & Hu 2021, arXiv:2011.14522,
Table 3, written with N(0, 1) weights): the same multipliers except at the output layer,

    z^(L) = sqrt(c_b) b^(L) + (sqrt(c_w) / n_(L-1)) W^(L) sigma(z^(L-1)),

and learning rate eta * n for every weight and every hidden bias (eta for the output bias), so
that the output moves by O(1) per step and every hidden feature by O(1) during training. Its
effective kernel, sum_p (eta_p / eta) df/dp df/dp, is O(1) but moves by O(1) at any width.

The loss is L = 1/2 sum_a (f(x_a) - y_a)^2 and one step is p <- p - eta_p dL/dp.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .empirical import DEFAULT_MEMORY, empirical_ntk
from .network import MLP, validate_inputs

__all__ = ["Network", "TrainingRecord", "train", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("ntk", "mup")


@dataclass(frozen=True)
class Network:
    """An MLP of hidden width ``width`` on inputs of dimension ``n_in``, scalar output, in a parameterization."""

    mlp: MLP
    n_in: int
    width: int
    parameterization: str = "ntk"

    def __post_init__(self):
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {self.parameterization!r}; choose one of {', '.join(PARAMETERIZATIONS)}")
        for name in ("n_in", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mlp.depth < 2:
            raise ValueError("a trained network needs depth >= 2 (at least one hidden layer)")

    @property
    def sizes(self) -> tuple[int, ...]:
        """n_0, n_1, ..., n_L (n_L = 1)."""
        return (self.n_in,) + (self.width,) * (self.mlp.depth - 1) + (1,)

    def init(self, key) -> list[dict]:
        """Parameters [{"w": (n_(l-1), n_l), "b": (n_l,)}, ...], every entry N(0, 1)."""
        keys = jax.random.split(key, self.mlp.depth)
        return [{"w": jax.random.normal(k, (n_in, n_out), dtype=jnp.float64), "b": jax.random.normal(jax.random.fold_in(k, 1), (n_out,), dtype=jnp.float64)}
                for k, n_in, n_out in zip(keys, self.sizes[:-1], self.sizes[1:])]

    def multipliers(self, layer: int) -> tuple[float, float]:
        """(bias, weight) multipliers of layer ``layer`` (1..L) in the forward pass."""
        c_b, c_w, fan_in = self.mlp.c_b_at(layer), self.mlp.c_w_at(layer), self.sizes[layer - 1]
        if self.parameterization == "mup" and layer == self.mlp.depth:
            return math.sqrt(c_b), math.sqrt(c_w) / fan_in
        return math.sqrt(c_b), math.sqrt(c_w / fan_in)

    def apply(self, params, x):
        """Outputs f(x) of shape (m,) for inputs x (m, n_in)."""
        h = x
        for layer, p in enumerate(params, start=1):
            mb, mw = self.multipliers(layer)
            z = mb * p["b"][None, :] + mw * (h @ p["w"])
            h = self.mlp.activation(z) if layer < self.mlp.depth else z
        return z[:, 0]

    def lr_scales(self) -> list[dict]:
        """Per-parameter learning rate over eta: 1 (ntk); n for weights and hidden biases, 1 for the output bias (mup)."""
        n = float(self.width) if self.parameterization == "mup" else 1.0
        return [{"w": n, "b": 1.0 if layer == self.mlp.depth else n} for layer in range(1, self.mlp.depth + 1)]

    def ntk(self, params, x1, x2=None, max_memory: int = DEFAULT_MEMORY) -> np.ndarray:
        """Empirical kernel of training, sum_p (eta_p / eta) df(x1)/dp df(x2)/dp, shape (m1, m2)."""
        roots = jax.tree_util.tree_map(math.sqrt, self.lr_scales())
        scaled = jax.tree_util.tree_map(lambda p, r: p / r, params, roots)
        return empirical_ntk(_scaled_apply(self), scaled, x1, x2, method="auto", max_memory=max_memory)


@functools.lru_cache(maxsize=16)
def _scaled_apply(net: Network):
    """f(u, x) = net.apply(u * sqrt(lr scale), x): its plain NTK is the learning-rate weighted one."""
    roots = jax.tree_util.tree_map(math.sqrt, net.lr_scales())

    def f(u, x):
        return net.apply(jax.tree_util.tree_map(lambda a, r: a * r, u, roots), x)

    return f


class TrainingRecord(NamedTuple):
    """Outputs (T, m), test outputs (T, m*) and loss (T,) at ``steps``; kernels (T', M, M) on
    train+test inputs at ``ntk_steps``; ``lr`` is eta."""

    steps: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray
    loss: np.ndarray
    ntk_steps: np.ndarray
    ntk: np.ndarray
    lr: float


def train(net: Network, params, x_train, y_train, x_test, *, lr: float, steps: int, record: Sequence[int] | None = None,
          ntk_at: Sequence[int] = (), max_memory: int = DEFAULT_MEMORY) -> TrainingRecord:
    """Full-batch gradient descent on L = 1/2 sum (f - y)^2 for ``steps`` steps.

    Outputs and loss are recorded at ``record`` (default: every step 0..steps), the kernel
    ``net.ntk`` on train+test inputs at ``ntk_at`` (each also recorded in ``record``)."""
    x_train, x_test = validate_inputs(x_train, "x_train"), validate_inputs(x_test, "x_test")
    y_train = np.asarray(y_train, dtype=np.float64)
    if y_train.shape != (x_train.shape[0],) or not np.all(np.isfinite(y_train)):
        raise ValueError(f"y_train must be finite with shape ({x_train.shape[0]},), got {y_train.shape}")
    if x_train.shape[1] != net.n_in or x_test.shape[1] != net.n_in:
        raise ValueError(f"inputs must have dimension n_in = {net.n_in}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be > 0, got {lr!r}")
    record = np.arange(steps + 1) if record is None else np.asarray(sorted(set(int(s) for s in record)))
    ntk_at = np.asarray(sorted(set(int(s) for s in ntk_at)), dtype=int)
    if record.size == 0 or record[0] < 0 or record[-1] > steps or (ntk_at.size and (ntk_at[0] < 0 or ntk_at[-1] > steps)):
        raise ValueError(f"recorded steps must lie in 0..{steps}")
    checkpoints = np.union1d(record, ntk_at)
    x_all = np.concatenate([x_train, x_test])
    run = _runner(net, lr)
    xt, yt = jnp.asarray(x_train), jnp.asarray(y_train)
    outs, kernels, done = [], [], 0
    for target in checkpoints:
        params = run(params, xt, yt, int(target - done))
        done = int(target)
        f_all = np.asarray(net.apply(params, jnp.asarray(x_all)))
        if not np.all(np.isfinite(f_all)):
            raise FloatingPointError(f"training diverged by step {done}: lower the learning rate (now {lr:g})")
        if done in record:
            outs.append(f_all)
        if done in ntk_at:
            kernels.append(net.ntk(params, x_all, max_memory=max_memory))
    outs = np.stack(outs)
    m = x_train.shape[0]
    loss = 0.5 * np.sum((outs[:, :m] - y_train) ** 2, axis=1)
    ntk = np.stack(kernels) if kernels else np.zeros((0, len(x_all), len(x_all)))
    return TrainingRecord(record, outs[:, :m], outs[:, m:], loss, ntk_at, ntk, float(lr))


def _runner(net: Network, lr: float):
    """jitted (params, x, y, n) -> params after n gradient-descent steps."""
    scales = net.lr_scales()

    def loss(params, x, y):
        return 0.5 * jnp.sum((net.apply(params, x) - y) ** 2)

    grad = jax.grad(loss)

    def step(_, params, x, y):
        g = grad(params, x, y)
        return jax.tree_util.tree_map(lambda p, gp, s: p - lr * s * gp, params, g, scales)

    @jax.jit
    def run(params, x, y, n):
        return jax.lax.fori_loop(0, n, lambda i, p: step(i, p, x, y), params)

    return run
