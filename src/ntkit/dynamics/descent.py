"""Mean predictions of gradient flow and gradient descent on MSE with a fixed kernel.

With L = 1/2 sum_a (f_a - y_a)^2, learning rate eta and kernel Theta = V diag(lambda) V^T on the
training inputs, the linearized network evolves as (Lee et al. 2019, arXiv:1902.06720, eq. 9-11)

    gradient flow:     f_t - y = V e^{-eta lambda t} V^T (f_0 - y),
                       f*_t    = f*_0 - Theta* V diag((1 - e^{-eta lambda t}) / lambda) V^T (f_0 - y),
    gradient descent:  f_k - y = V (1 - eta lambda)^k V^T (f_0 - y),
                       f*_k    = f*_0 - Theta* V diag((1 - (1 - eta lambda)^k) / lambda) V^T (f_0 - y),

with Theta* = Theta(x*, X); a zero eigenvalue gives the limits eta t and eta k. Gradient descent
converges iff eta < 2 / lambda_max (else :class:`LearningRateError`). The residual of eigenmode i,
v_i^T (f_t - y), decays at its own rate eta lambda_i: large-eigenvalue modes are learnt first
(spectral bias).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .linalg import as_cross, as_kernel, as_real, as_targets, check_rcond, eigh

__all__ = ["Trajectory", "LearningRateError", "check_learning_rate", "gradient_flow", "gradient_descent", "mse_loss",
           "mode_residuals"]


class LearningRateError(ValueError):
    """Gradient descent with this learning rate diverges: eta >= 2 / lambda_max."""


class Trajectory(NamedTuple):
    """Predicted outputs at each time: ``train`` (T, m[, C]); ``test`` (T, m*[, C]) or None."""

    times: np.ndarray
    train: np.ndarray
    test: np.ndarray | None


def check_learning_rate(theta, lr: float) -> float:
    """lambda_max of theta; raises LearningRateError unless 0 < lr < 2 / lambda_max."""
    lam, _ = eigh(theta)
    _check_lr(lr, lam[-1])
    return float(lam[-1])


def _check_lr(lr: float, lam_max: float) -> None:
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be > 0, got {lr!r}")
    if lr * lam_max >= 2.0:
        raise LearningRateError(f"learning rate {lr:.6g} >= 2 / lambda_max = {2.0 / lam_max:.6g} "
                                f"(lambda_max = {lam_max:.6g}): gradient descent diverges")


def gradient_flow(theta_train, y, t, *, lr: float = 1.0, f0_train=None, theta_test_train=None, f0_test=None,
                  rcond: float = 1e-12) -> Trajectory:
    """Gradient-flow outputs at times t (scalar or array, t = inf allowed) on train and test inputs."""
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be > 0, got {lr!r}")
    times = _times(t, "t")
    rcond = check_rcond(rcond)

    def decay(lam):
        tt, safe = times[:, None], np.where(lam > 0, lam, 1.0)[None, :]
        finite = np.where(lam[None, :] > 0, np.exp(-lr * safe * np.where(np.isinf(tt), 0.0, tt)), 1.0)
        return np.where(np.isinf(tt), np.where(lam[None, :] > rcond * lam[-1], 0.0, 1.0), finite)

    def gain(lam):
        tt = times[:, None]
        safe = np.where(lam > 0, lam, 1.0)[None, :]
        finite = np.where(lam[None, :] > 0, -np.expm1(-lr * safe * np.where(np.isinf(tt), 0.0, tt)) / safe, lr * tt)
        converged = np.where(lam[None, :] > rcond * lam[-1], 1.0 / safe, 0.0)
        return np.where(np.isinf(tt), converged, finite)

    return _evolve(theta_train, y, times, decay, gain, f0_train, theta_test_train, f0_test)


def gradient_descent(theta_train, y, steps, *, lr: float, f0_train=None, theta_test_train=None,
                     f0_test=None) -> Trajectory:
    """Outputs after ``steps`` (integer or array of integers) full-batch gradient-descent steps."""
    steps = _times(steps, "steps")
    if np.any(steps != np.round(steps)) or np.any(np.isinf(steps)):
        raise ValueError("steps must be finite non-negative integers")
    lam_max = eigh(theta_train)[0][-1]
    _check_lr(lr, lam_max)

    def decay(lam):
        return (1.0 - lr * lam[None, :]) ** steps[:, None]

    def gain(lam):
        safe = np.where(lam > 0, lam, 1.0)[None, :]
        return np.where(lam[None, :] > 0, (1.0 - decay(lam)) / safe, lr * steps[:, None])

    return _evolve(theta_train, y, steps, decay, gain, f0_train, theta_test_train, f0_test)


def mse_loss(f, y) -> np.ndarray:
    """L = 1/2 sum over inputs (and outputs) of (f - y)^2, for f of shape (..., m[, C])."""
    f, y = as_real(f, "f"), as_real(y, "y")
    if f.shape[f.ndim - y.ndim:] != y.shape:
        raise ValueError(f"outputs {f.shape} do not end in the targets' shape {y.shape}")
    return 0.5 * np.sum((f - y) ** 2, axis=tuple(range(f.ndim - y.ndim, f.ndim)))


def mode_residuals(theta_train, y, f_train) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of theta (descending) and residuals v_i^T (f - y) of outputs f (..., m[, C])."""
    lam, vec = eigh(theta_train)
    f = as_real(f_train, "f_train")
    y = as_targets(y, lam.size)
    if f.shape[f.ndim - y.ndim:] != y.shape or not np.all(np.isfinite(f)):
        raise ValueError(f"f_train must be finite and end in the targets' shape {y.shape}, got {f.shape}")
    resid = np.moveaxis(f - y, f.ndim - y.ndim, -1)  # (..., [C,] m)
    proj = np.moveaxis(resid @ vec[:, ::-1], -1, f.ndim - y.ndim)
    return lam[::-1], proj


def _times(t, name: str) -> np.ndarray:
    times = np.atleast_1d(as_real(t, name))
    if times.ndim != 1 or np.any(np.isnan(times)) or np.any(times < 0):
        raise ValueError(f"{name} must be a non-negative scalar or 1-D array, got {t!r}")
    return times


def _evolve(theta_train, y, times, decay, gain, f0_train, theta_test_train, f0_test) -> Trajectory:
    theta = as_kernel(theta_train, "theta_train")
    m = theta.shape[0]
    y = as_targets(y, m)
    f0 = np.zeros_like(y) if f0_train is None else as_targets(f0_train, m, "f0_train")
    if f0.shape != y.shape:
        raise ValueError(f"f0_train must have the targets' shape {y.shape}, got {f0.shape}")
    lam, vec = eigh(theta)
    r0 = vec.T @ (f0 - y)  # (m[, C]) residual in the eigenbasis
    expand = (lambda a: a[:, :, None]) if y.ndim == 2 else (lambda a: a)
    train = y[None] + np.einsum("am,tm...->ta...", vec, expand(decay(lam)) * r0[None])
    test = None
    if f0_test is not None and theta_test_train is None:
        raise ValueError("f0_test is used only with theta_test_train (the test outputs need the test-train kernel)")
    if theta_test_train is not None:
        ts = as_cross(theta_test_train, m, "theta_test_train")
        shape = (ts.shape[0],) + y.shape[1:]
        g0 = np.zeros(shape) if f0_test is None else as_real(f0_test, "f0_test")
        if g0.shape != shape or not np.all(np.isfinite(g0)):
            raise ValueError(f"f0_test must be finite with shape {shape}, got {g0.shape}")
        test = g0[None] - np.einsum("am,tm...->ta...", ts @ vec, expand(gain(lam)) * r0[None])
    return Trajectory(times, train, test)
