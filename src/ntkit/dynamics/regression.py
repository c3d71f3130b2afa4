"""Kernel ridge regression, Gaussian-process posteriors and the trained infinite-width ensemble.

Kernel ridge regression with kernel k, ridge r >= 0 and targets y:

    f(x*) = k(x*, X) (k(X, X) + r I)^{-1} y.

r > 0 uses a Cholesky factor (with the jitter of :func:`cholesky_with_jitter`, reported); r = 0
is ridgeless regression, k(x*, X) k(X, X)^+ y with the eigendecomposition pseudo-inverse
(eigenvalues below ``rcond`` lambda_max dropped): the minimum-norm interpolant, which is also the
t -> infinity limit of gradient flow from f_0 = 0.

GP posterior with prior kernel k (the NNGP kernel K, or the NTK Theta for the "NTK-GP") and
noise variance s^2 (Rasmussen & Williams 2006, eq. 2.23-2.24):

    mean = k*^T (k + s^2 I)^{-1} y,      cov = k** - k*^T (k + s^2 I)^{-1} k*.

The ensemble of infinitely wide networks trained to convergence by gradient flow on MSE (Lee et
al. 2019, arXiv:1902.06720, eq. 16) has mean Theta* Theta^{-1} y and covariance

    K** + Theta* Theta^{-1} K Theta^{-1} Theta*^T - (Theta* Theta^{-1} K*^T + h.c.).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .linalg import as_cross, as_kernel, as_targets, check_rcond, cholesky_with_jitter, eigh

__all__ = ["RegressionResult", "GPPosterior", "kernel_regression", "gp_posterior", "trained_ensemble", "pinv_solve"]


class RegressionResult(NamedTuple):
    """Predictions on the training and test inputs, the solve used and the jitter it needed."""

    train: np.ndarray
    test: np.ndarray | None
    alpha: np.ndarray
    method: str
    jitter: float


class GPPosterior(NamedTuple):
    """Posterior mean (m_test,) or (m_test, C) and covariance (m_test, m_test) on test inputs."""

    mean: np.ndarray
    cov: np.ndarray
    jitter: float


def pinv_solve(k: np.ndarray, b: np.ndarray, rcond: float = 1e-12) -> np.ndarray:
    """k^+ b by eigendecomposition, dropping eigenvalues below rcond * lambda_max."""
    lam, vec = eigh(k)
    keep = lam > rcond * lam[-1]
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    return vec @ (_scale_rows(inv, vec.T @ b))


def _scale_rows(d: np.ndarray, b: np.ndarray) -> np.ndarray:
    return d[:, None] * b if b.ndim == 2 else d * b


def kernel_regression(k_train, y, k_test_train=None, ridge: float = 0.0, rcond: float = 1e-12) -> RegressionResult:
    """Kernel ridge regression; ridge = 0 is ridgeless (pseudo-inverse), ridge > 0 uses Cholesky."""
    k = as_kernel(k_train, "k_train")
    y = as_targets(y, k.shape[0])
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    rcond = check_rcond(rcond)
    if ridge > 0:
        factor = cholesky_with_jitter(k + ridge * np.eye(k.shape[0]))
        alpha, method, jitter = factor.solve(y), "cholesky", factor.jitter
    else:
        alpha, method, jitter = pinv_solve(k, y, rcond), "pinv", 0.0
    test = None
    if k_test_train is not None:
        test = as_cross(k_test_train, k.shape[0]) @ alpha
    return RegressionResult(k @ alpha, test, alpha, method, jitter)


def gp_posterior(k_train, k_test_train, k_test_test, y, noise: float = 0.0) -> GPPosterior:
    """GP posterior mean and covariance at test inputs (noise variance ``noise`` >= 0)."""
    k = as_kernel(k_train, "k_train")
    ks = as_cross(k_test_train, k.shape[0])
    kss = as_kernel(k_test_test, "k_test_test")
    if kss.shape[0] != ks.shape[0]:
        raise ValueError(f"k_test_test must be ({ks.shape[0]}, {ks.shape[0]}), got {kss.shape}")
    y = as_targets(y, k.shape[0])
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite variance >= 0, got {noise!r}")
    factor = cholesky_with_jitter(k + noise * np.eye(k.shape[0]))
    mean = ks @ factor.solve(y)
    cov = kss - ks @ factor.solve(ks.T)
    return GPPosterior(mean, _checked_covariance(cov, kss), factor.jitter)


def trained_ensemble(theta_train, theta_test_train, k_train, k_test_train, k_test_test, y) -> GPPosterior:
    """Mean and covariance over initializations of infinitely wide networks trained to t = inf."""
    theta = as_kernel(theta_train, "theta_train")
    m = theta.shape[0]
    ts = as_cross(theta_test_train, m, "theta_test_train")
    k = as_kernel(k_train, "k_train")
    ks = as_cross(k_test_train, m)
    kss = as_kernel(k_test_test, "k_test_test")
    if k.shape != theta.shape or ks.shape != ts.shape or kss.shape[0] != ts.shape[0]:
        raise ValueError("NTK and NNGP kernels must be given on the same training and test inputs")
    y = as_targets(y, m)
    factor = cholesky_with_jitter(theta)
    a = factor.solve(ts.T).T  # Theta* Theta^{-1}
    cross = a @ ks.T
    cov = kss + a @ k @ a.T - cross - cross.T
    return GPPosterior(a @ y, _checked_covariance(cov, kss), factor.jitter)


def _checked_covariance(cov: np.ndarray, kss: np.ndarray) -> np.ndarray:
    """The symmetrized covariance, refused if a variance is negative beyond round-off.

    A variance below -1e-3 max(diag k_test_test) means the kernels given are not the blocks of
    one positive semi-definite covariance of the training and test inputs. (A solve through a
    factor with pivots >= 1e-12 max K_ii loses at most ~12 digits, so round-off stays far below.)
    """
    variances = np.diagonal(cov)
    floor = -1e-3 * max(float(np.max(np.diagonal(kss))), np.finfo(np.float64).tiny)
    if np.min(variances) < floor:
        raise ValueError(f"posterior variance {np.min(variances):.3g} < 0 at test input {int(np.argmin(variances))}: k_train, "
                         "k_test_train and k_test_test are not blocks of one positive semi-definite kernel of the training and test inputs")
    return (cov + cov.T) / 2
