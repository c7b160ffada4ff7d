"""A gate on each social edge of the propagation, learnt jointly with the ranking loss.

Fixed social weights (circle x tie strength) pass a noisy trust graph's edges as they are. The
gate rescales each user-user entry of the normalised adjacency by how alike the two users'
layer-0 embeddings are, with two learnt scalars:

    g_uv = exp(3 tanh((b + a cos(x_u, x_v)) / 3))       (between e^-3 and e^3)

``a = b = 0`` at the start, so ``g = 1``: the gated model starts as the fixed-weight one and the
ranking loss moves the edges from there (down for contacts whose tastes differ, up for alike ones).
The idea follows the graph-denoising social recommenders (GBSR, KDD 2024; SGIL, SIGIR 2025), in a
two-parameter form.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class _EdgeDot(torch.autograd.Function):
    """``[E]`` dot products ``<a[src_e], a[dst_e]>`` over a symmetric CSR pattern, by one sampled
    product (no ``[E, d]`` gathers); ``rev[e]`` is the index of edge ``e``'s reverse."""

    @staticmethod
    def forward(ctx, a: Tensor, pattern: Tensor, rev: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(a)
        ctx.pattern, ctx.rev = pattern, rev
        return torch.sparse.sampled_addmm(pattern, a, a.T, beta=0.0).values()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (a,) = ctx.saved_tensors
        g = _with_values(ctx.pattern, grad)
        g_t = _with_values(ctx.pattern, grad[ctx.rev])
        return torch.sparse.mm(g, a) + torch.sparse.mm(g_t, a), None, None


class _ValuedSpMM(torch.autograd.Function):
    """``S @ x`` for a CSR ``S`` on a fixed symmetric pattern whose values carry gradients: the
    values' gradient is one sampled product ``(grad @ x^T)`` on the pattern, the input's the
    transpose's product (values taken through ``rev``)."""

    @staticmethod
    def forward(ctx, values: Tensor, x: Tensor, pattern: Tensor, rev: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(values, x)
        ctx.pattern, ctx.rev = pattern, rev
        return torch.sparse.mm(_with_values(pattern, values), x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        values, x = ctx.saved_tensors
        grad = grad.contiguous()
        g_values = torch.sparse.sampled_addmm(ctx.pattern, grad, x.T, beta=0.0).values()
        g_x = torch.sparse.mm(_with_values(ctx.pattern, values[ctx.rev]), grad)
        return g_values, g_x, None, None


def _with_values(pattern: Tensor, values: Tensor) -> Tensor:
    return torch.sparse_csr_tensor(pattern.crow_indices(), pattern.col_indices(), values, pattern.shape,
                                   check_invariants=False)


class SocialGate(torch.nn.Module):
    """The social part of a normalised adjacency, gated per edge.

    Args:
        num_users: number of users ``U``.
        src, dst: ``[E]`` user-user entries (both directions of each tie), sorted by ``src`` then
            ``dst`` without duplicates.
        base: ``[E]`` their values in the normalised adjacency.
    """

    def __init__(self, num_users: int, src: np.ndarray, dst: np.ndarray, base: np.ndarray) -> None:
        super().__init__()
        self.num_users = num_users
        key = src.astype(np.int64) * num_users + dst
        reverse = dst.astype(np.int64) * num_users + src
        if np.any(np.diff(key) <= 0):
            raise ValueError("social entries must be sorted by src then dst, without duplicates")
        rev = np.searchsorted(key, reverse)
        if not np.array_equal(np.append(key, -1)[rev], reverse):   # -1: past the end, never a key
            raise ValueError("social entries must be symmetric (each edge's reverse present)")
        crow = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_users))]).astype(np.int64)
        # Not in the state dict: they come from the data, like the adjacency.
        self.register_buffer("crow", torch.from_numpy(crow), persistent=False)
        self.register_buffer("col", torch.from_numpy(dst.astype(np.int64)), persistent=False)
        self.register_buffer("rev", torch.from_numpy(rev.astype(np.int64)), persistent=False)
        self.register_buffer("base", torch.from_numpy(base.astype(np.float32)), persistent=False)
        self.scale = torch.nn.Parameter(torch.tensor(0.0))
        self.bias = torch.nn.Parameter(torch.tensor(0.0))

    def _pattern(self) -> Tensor:
        return torch.sparse_csr_tensor(self.crow, self.col, torch.ones_like(self.base), (self.num_users,) * 2,
                                       check_invariants=False)

    def gates(self, users: Tensor) -> Tensor:
        """``[E]`` gates of the edges from the ``[U, d]`` layer-0 user embeddings."""
        cos = _EdgeDot.apply(F.normalize(users, dim=-1), self._pattern(), self.rev)
        return torch.exp(3.0 * torch.tanh((self.bias + self.scale * cos) / 3.0))

    def values(self, users: Tensor) -> Tensor:
        """``[E]`` gated social entries from the ``[U, d]`` layer-0 user embeddings."""
        return self.base * self.gates(users)

    def propagate(self, values: Tensor, x: Tensor) -> Tensor:
        """``[U, d]``: the social entries ``values`` ``[E]`` times user rows ``x`` ``[U, d]``."""
        return _ValuedSpMM.apply(values, x, self._pattern(), self.rev)


def split_social(adjacency: Tensor, num_users: int) -> tuple[Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """A normalised ``[N, N]`` CSR adjacency split into its non-social part (CSR, same shape) and
    its user-user entries ``(src [E], dst [E], values [E])``, sorted by ``src`` then ``dst``."""
    crow = adjacency.crow_indices().numpy()
    col = adjacency.col_indices().numpy()
    val = adjacency.values().numpy()
    row = np.repeat(np.arange(len(crow) - 1), np.diff(crow))
    social = (row < num_users) & (col < num_users)
    keep = ~social
    counts = np.bincount(row[keep], minlength=len(crow) - 1)
    rest = torch.sparse_csr_tensor(torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)),
                                   torch.from_numpy(col[keep].astype(np.int64)), torch.from_numpy(val[keep]),
                                   tuple(adjacency.shape), check_invariants=False)
    return rest, row[social].astype(np.int64), col[social].astype(np.int64), val[social]
