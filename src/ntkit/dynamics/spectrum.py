"""Spectral summaries of a kernel matrix K (eigenvalues lambda_i >= 0).

* condition number lambda_max / lambda_min (inf when K is singular);
* effective dimension at ridge r > 0: d_eff(r) = tr K (K + r I)^{-1} = sum_i lambda_i / (lambda_i + r);
* participation ratio (sum_i lambda_i)^2 / sum_i lambda_i^2, between 1 and m.
"""

from __future__ import annotations

import numpy as np

from .linalg import eigh

__all__ = ["condition_number", "effective_dimension", "participation_ratio"]


def condition_number(k) -> float:
    """lambda_max / lambda_min of the PSD kernel k (inf if lambda_min = 0)."""
    lam, _ = eigh(k)
    return float("inf") if lam[0] <= 0 else float(lam[-1] / lam[0])


def effective_dimension(k, ridge: float) -> float:
    """sum_i lambda_i / (lambda_i + ridge), ridge > 0."""
    if not np.isfinite(ridge) or ridge <= 0:
        raise ValueError(f"ridge must be > 0 for the effective dimension, got {ridge!r}")
    lam, _ = eigh(k)
    return float(np.sum(lam / (lam + ridge)))


def participation_ratio(k) -> float:
    """(sum lambda)^2 / sum lambda^2."""
    lam, _ = eigh(k)
    if lam[-1] <= 0:
        raise ValueError("kernel is zero: its participation ratio is undefined")
    return float(np.sum(lam) ** 2 / np.sum(lam**2))
