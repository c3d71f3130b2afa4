"""Estimates of K, theta and n * cumulant (V, D, F, A, B) with standard errors, from an accumulator.

With N networks, sample means bar, sample covariances cov (divisor N - 1) and n = n_(l-1) the
fan-in of layer l (theory specification, section 1.1, neurons i != j):

    K = bar Gz,  theta = bar Gt,
    V_(ab)(cd) = n [bar Pzz_abcd - (bar Gz_ab bar Gz_cd - cov(Gz_ab, Gz_cd) / N)],
    D_abcd     = n [bar Pzt_abcd - (bar Gz_ab bar Gt_cd - cov(Gz_ab, Gt_cd) / N)],
    A_(ab)(cd) = n [bar Ptt_abcd - (bar Gt_ab bar Gt_cd - cov(Gt_ab, Gt_cd) / N)],
    F_acbd = n bar Fo_acbd,  B_acbd = n bar Bo_acbd,
    K1 = n (bar Gz - K_infinite),  theta1 = n (bar Gt - theta_infinite).

The product of means is corrected by its O(1/N) bias, so V, D, A are unbiased. Standard errors of
the products come from the delta method: P - mu_r l - mu_l r has variance
var P + mu_r^2 var l + mu_l^2 var r - 2 mu_r cov(P, l) - 2 mu_l cov(P, r) + 2 mu_l mu_r cov(l, r).
"""

from __future__ import annotations

import numpy as np

from .accumulator import Accumulator

__all__ = ["estimate"]

# cumulant name -> (pair observable, left factor, right factor, block of the (Gz, Gt) covariance)
_PRODUCTS = {"V": ("Pzz", "Gz", "Gz", (0, 0)), "D": ("Pzt", "Gz", "Gt", (0, 1)), "A": ("Ptt", "Gt", "Gt", (1, 1))}


def estimate(acc: Accumulator, fan_in: np.ndarray, infinite: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Estimates and ``<name>_stderr`` arrays (layer first); ``fan_in`` holds n_(l-1) per layer.

    Only K and theta (and K1, theta1) when the accumulator holds the means alone."""
    N = acc.count
    L, m = acc.mean["Gz"].shape[:2]
    cov = {k: v / (N - 1) for k, v in acc.comoment.items()}
    gg = cov["GG"].reshape(L, 2, m, m, 2, m, m)
    n2 = fan_in.reshape(L, 1, 1).astype(np.float64)
    n4 = fan_in.reshape(L, 1, 1, 1, 1).astype(np.float64)
    out = {}
    for name, obs, block in (("K", "Gz", 0), ("theta", "Gt", 1)):
        out[name] = acc.mean[obs]
        out[f"{name}_stderr"] = np.sqrt(np.maximum(_diag_var(gg, block, L, m), 0.0) / N)
    for name, (pair, left, right, (bl, br)) in _PRODUCTS.items():
        if pair not in acc.mean:  # statistics="mean": no four-sample observables
            continue
        mu_l = acc.mean[left][:, :, :, None, None]
        mu_r = acc.mean[right][:, None, None, :, :]
        cov_lr = gg[:, bl, :, :, br]
        var_l = _diag_var(gg, bl, L, m)[:, :, :, None, None]
        var_r = _diag_var(gg, br, L, m)[:, None, None, :, :]
        out[name] = n4 * (acc.mean[pair] - (mu_l * mu_r - cov_lr / N))
        var_u = (cov[pair] + mu_r**2 * var_l + mu_l**2 * var_r - 2 * mu_r * cov[f"{pair}_l"]
                 - 2 * mu_l * cov[f"{pair}_r"] + 2 * mu_l * mu_r * cov_lr)
        out[f"{name}_stderr"] = n4 * np.sqrt(np.maximum(var_u, 0.0) / N)
    for name, obs in (("F", "Fo"), ("B", "Bo")):
        if obs not in acc.mean:
            continue
        out[name] = n4 * acc.mean[obs]
        out[f"{name}_stderr"] = n4 * np.sqrt(np.maximum(cov[obs], 0.0) / N)
    if infinite is not None:
        for name, base in (("K1", "K"), ("theta1", "theta")):
            out[name] = n2 * (out[base] - infinite[base])
            out[f"{name}_stderr"] = n2 * out[f"{base}_stderr"]
    return out


def _diag_var(gg: np.ndarray, block: int, L: int, m: int) -> np.ndarray:
    """Variances of the (Gz or Gt) entries, shape (L, m, m)."""
    sub = gg[:, block, :, :, block].reshape(L, m * m, m * m)
    return np.diagonal(sub, axis1=1, axis2=2).reshape(L, m, m)
