"""Checked kernel matrices and the two factorizations the dynamics use.

``cholesky_with_jitter`` factors K + jitter I with jitter = 0 first, then 1e-12 tr(K)/m, growing
tenfold only until the factor is numerically nonsingular (every pivot L_ii^2 > 1e-12 max_i K_ii,
i.e. a solve loses at most about 12 of float64's 16 digits);
the jitter used is returned. ``eigh`` gives the spectrum with eigenvalues clipped at zero from
below when their negative part is rounding (|lambda| < m eps lambda_max).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

__all__ = ["CholeskyFactor", "SingularKernelError", "as_cross", "as_kernel", "as_real", "as_targets", "check_rcond", "cholesky_with_jitter",
           "eigh"]

_EPS = np.finfo(np.float64).eps
PIVOT_TOLERANCE = 1e-12


class SingularKernelError(np.linalg.LinAlgError, ValueError):
    """The kernel matrix cannot be factored even with the largest allowed jitter."""


class CholeskyFactor(NamedTuple):
    """Lower Cholesky factor L of K + jitter I (``jitter`` is what had to be added)."""

    L: np.ndarray
    jitter: float

    def solve(self, b: np.ndarray) -> np.ndarray:
        """(K + jitter I)^{-1} b."""
        return scipy.linalg.cho_solve((self.L, True), b, check_finite=False)


def as_real(value, name: str) -> np.ndarray:
    """``value`` as a float64 array; complex or non-numeric input is refused (a cast would drop
    the imaginary part or parse strings)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array.astype(np.float64)


def check_rcond(rcond) -> float:
    """The relative cut-off of a pseudo-inverse: eigenvalues <= rcond lambda_max count as zero."""
    if isinstance(rcond, bool) or not isinstance(rcond, (int, float, np.floating)) or not 0.0 < rcond < 1.0:
        raise ValueError(f"rcond must be a number in (0, 1), got {rcond!r}")
    return float(rcond)


def as_kernel(k, name: str = "kernel") -> np.ndarray:
    """A finite, square, symmetric (to 1e-8 relative) float64 matrix."""
    k = as_real(k, name)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"{name} must be a square (m, m) matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{name} contains NaN or inf")
    scale = max(float(np.max(np.abs(k))), np.finfo(np.float64).tiny)
    if np.max(np.abs(k - k.T)) > 1e-8 * scale:
        raise ValueError(f"{name} is not symmetric (max |K - K^T| = {np.max(np.abs(k - k.T)):.3g})")
    return (k + k.T) / 2


def as_cross(k, m_train: int, name: str = "k_test_train") -> np.ndarray:
    """A finite (m_test, m_train) cross-kernel."""
    k = as_real(k, name)
    if k.ndim != 2 or k.shape[1] != m_train:
        raise ValueError(f"{name} must have shape (m_test, {m_train}), got {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{name} contains NaN or inf")
    return k


def as_targets(y, m: int, name: str = "y") -> np.ndarray:
    """Finite targets of shape (m,) or (m, C)."""
    y = as_real(y, name)
    if y.ndim not in (1, 2) or y.shape[0] != m:
        raise ValueError(f"{name} must have shape ({m},) or ({m}, C), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf")
    return y


def cholesky_with_jitter(k: np.ndarray, max_relative_jitter: float = 1e-3) -> CholeskyFactor:
    """Cholesky factor of k + jitter I, jitter growing from 0 only until the factor is nonsingular."""
    k = as_kernel(k)
    m = k.shape[0]
    diag_max = float(np.max(np.diag(k)))
    if diag_max <= 0:
        raise SingularKernelError("kernel has no positive diagonal entry: it cannot be factored")
    scale = float(np.trace(k)) / m
    jitter = 0.0
    while True:
        try:
            L = scipy.linalg.cholesky(k + jitter * np.eye(m), lower=True, check_finite=False)
            if np.min(np.diag(L)) ** 2 > PIVOT_TOLERANCE * (diag_max + jitter):
                return CholeskyFactor(L, jitter)
        except np.linalg.LinAlgError:
            pass
        jitter = 1e-12 * scale if jitter == 0.0 else 10.0 * jitter
        if jitter > max_relative_jitter * scale:
            raise SingularKernelError(
                f"kernel is not positive definite even with jitter {max_relative_jitter:g} x mean diagonal "
                f"({max_relative_jitter * scale:.3g}); use ridge > 0 or the ridgeless (eigendecomposition) solver")


def eigh(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of a symmetric PSD kernel; rounding negatives set to 0.

    Raises ``ValueError`` for an eigenvalue below -m eps lambda_max (not PSD)."""
    k = as_kernel(k)
    lam, vec = np.linalg.eigh(k)
    tol = k.shape[0] * _EPS * max(float(np.max(np.abs(lam))), np.finfo(np.float64).tiny)
    if lam[0] < -1e3 * tol:
        raise ValueError(f"kernel is not positive semi-definite: smallest eigenvalue {lam[0]:.3g}")
    return np.clip(lam, 0.0, None), vec
