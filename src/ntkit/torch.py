"""Empirical NTK of a PyTorch ``nn.Module`` through ``torch.func`` (extra ``ntkit[torch]``).

The same kernel and methods as :func:`ntkit.empirical_ntk`: Theta_{a1 a2, c1 c2} = sum_p
d f_{a1 c1}/d p  d f_{a2 c2}/d p over the module's parameters, by Jacobian contraction
(``torch.func.jacrev`` vmapped over samples) or by NTK-vector products (``vjp`` then ``jvp``).
``"auto"`` takes the contraction for at most 6 outputs: for an MLP a forward pass costs about
2P flops per sample, so C^2 P <= 3 C [FP] when C <= 6. Buffers are used as they are; samples must
be independent (the module sees each sample as a batch of one). Results are numpy float arrays
in the module's dtype.
"""

from __future__ import annotations

import numpy as np

from .empirical import DEFAULT_MEMORY, METHODS

__all__ = ["empirical_ntk"]


def empirical_ntk(module, x1, x2=None, *, method: str = "auto", trace: bool = False,
                  max_memory: int = DEFAULT_MEMORY) -> np.ndarray:
    """Empirical NTK of ``module`` between x1 (m1, ...) and x2 (m2, ...), shapes as in ntkit.empirical_ntk."""
    import torch

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not (isinstance(max_memory, (int, np.integer)) and max_memory > 0):
        raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
    symmetric = x2 is None
    x1 = _inputs(torch, x1, "x1")
    x2 = x1 if symmetric else _inputs(torch, x2, "x2")
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 and x2 must have the same per-sample shape, got {tuple(x1.shape[1:])} and {tuple(x2.shape[1:])}")
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}

    def single(p, x):
        return torch.func.functional_call(module, (p, buffers), (x.unsqueeze(0),)).reshape(-1)

    with torch.no_grad():
        out = module(x1[:1])
    if out.ndim not in (1, 2) or out.shape[0] != 1:
        raise ValueError(f"the module must return shape (m,) or (m, C) for m inputs; got {tuple(out.shape)} for one input")
    n_out = 1 if out.ndim == 1 else out.shape[1]
    n_params = sum(p.numel() for p in params.values())
    if method == "auto":
        method = "jacobian" if n_out <= 6 else "ntvp"
    per_sample = (2 if method == "jacobian" else 1) * n_out * n_params * out.element_size()
    block = max_memory // per_sample
    if block < 1:
        raise MemoryError(f"one sample's Jacobian needs {per_sample:,} bytes, more than max_memory={max_memory:,}")
    block = int(min(block, max(len(x1), len(x2))))
    kernel = _jacobian_block if method == "jacobian" else _ntvp_block
    theta = np.empty((len(x1), len(x2), n_out, n_out), dtype=out.detach().numpy().dtype)
    for i in range(0, len(x1), block):
        for j in range(0, len(x2), block):
            if symmetric and j < i:
                theta[i:i + block, j:j + block] = theta[j:j + block, i:i + block].transpose(1, 0, 3, 2)
                continue
            theta[i:i + block, j:j + block] = kernel(torch, single, params, x1[i:i + block], x2[j:j + block]).numpy()
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError("the empirical NTK has NaN or inf entries: check the module's outputs and gradients")
    if trace:
        return np.trace(theta, axis1=2, axis2=3)
    return theta[:, :, 0, 0] if out.ndim == 1 else theta


def _inputs(torch, x, name: str):
    x = torch.as_tensor(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch of inputs with a leading sample axis, got shape {tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _jacobian_block(torch, single, params, x1, x2):
    """sum_p J1_p J2_p^T with per-sample Jacobians (b, C, P_k) of every parameter tensor."""
    per_sample = torch.func.vmap(torch.func.jacrev(single), in_dims=(None, 0))
    with torch.no_grad():
        j1, j2 = per_sample(params, x1), per_sample(params, x2)
        return sum(torch.einsum("icp,jdp->ijcd", j1[k].flatten(2), j2[k].flatten(2)) for k in params)


def _ntvp_block(torch, single, params, x1, x2):
    """Columns Theta e_(b, c) = J1 (J2^T e_(b, c)): a vjp on one sample of x2, then a jvp through x1."""
    batch = lambda p: torch.func.vmap(single, in_dims=(None, 0))(p, x1)  # noqa: E731
    columns = []
    for x_b in x2:
        _, vjp = torch.func.vjp(lambda p: single(p, x_b), params)
        n_out = single(params, x_b).shape[0]
        tangents = torch.func.vmap(lambda e: vjp(e)[0])(torch.eye(n_out, dtype=x2.dtype))
        columns.append(torch.func.vmap(lambda t: torch.func.jvp(batch, (params,), (t,))[1])(tangents))  # (C2, m1, C1)
    return torch.stack(columns).permute(2, 0, 3, 1).detach()
