"""The log-sum-exp of a batch of users' scores over a catalogue, a block of rows at a time.

The multinomial loss needs, for each user of a step, ``log sum_j exp(s_uj)`` over the scored items
``j``, with ``s_uj = u . c_j + b_j + w S_uj`` (user vector, item vector, item bias, learnt weight
times the sparse social support). Written with autograd ops, the whole ``[B, S]`` score block is
stored, then read and rewritten by half a dozen elementwise passes forward and backward (at the
100k-user world's ``[5910, 5677]`` block, 134 MB, about 0.5 s of a 1.8 s step on two cores).

:func:`catalogue_logsumexp` computes the same function over blocks of rows small enough to stay in
cache: the forward keeps only the ``[B]`` result, the backward recomputes each block once and turns
it into the softmax weights in place, so the ``[B, S]`` block is never held whole. It costs one
more matrix product than autograd (the recomputation) and saves the passes over memory.
"""
from __future__ import annotations

import torch
from torch import Tensor

# Scores per block: 2^20 floats (4 MB), a couple of hundred users against a sample of a few
# thousand items: large enough for the matrix products, small enough for the cache
# (experiments/bench_step.py measures the sizes around it).
BLOCK_SCORES = 2**20


class SparseTerm:
    """``w S`` where ``S`` is a sparse ``[B, S]`` matrix given by its entries sorted by row.

    Args:
        rows, cols: ``[nnz]`` coordinates, ``rows`` non-decreasing.
        values: ``[nnz]`` entries of ``S``.
        weight: scalar tensor ``w`` (learnt).
    """

    def __init__(self, rows: Tensor, cols: Tensor, values: Tensor, weight: Tensor) -> None:
        self.rows, self.cols, self.values, self.weight = rows, cols, values, weight

    def span(self, start: int, stop: int) -> tuple[Tensor, Tensor, Tensor]:
        """The entries of rows ``start..stop-1``: (rows - start, cols, values)."""
        lo, hi = torch.searchsorted(self.rows, torch.tensor([start, stop], device=self.rows.device)).tolist()
        return self.rows[lo:hi] - start, self.cols[lo:hi], self.values[lo:hi]


def _block(u: Tensor, items: Tensor, bias: Tensor | None, term: SparseTerm | None, weight: Tensor | None,
           start: int, stop: int) -> Tensor:
    """``[stop - start, S]`` scores of users ``start..stop-1``."""
    block = u[start:stop] @ items.T if bias is None else torch.addmm(bias, u[start:stop], items.T)
    if term is not None:
        r, c, v = term.span(start, stop)
        block.index_put_((r, c), weight * v, accumulate=True)
    return block


class _LogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, items: Tensor, bias: Tensor | None, weight: Tensor | None,  # type: ignore[override]
                term: SparseTerm | None, rows_per_block: int) -> Tensor:
        out = torch.empty(len(u), dtype=u.dtype, device=u.device)
        for start in range(0, len(u), rows_per_block):
            stop = min(start + rows_per_block, len(u))
            out[start:stop] = torch.logsumexp(_block(u, items, bias, term, weight, start, stop), dim=1)
        ctx.save_for_backward(u, items, bias, weight, out)
        ctx.term, ctx.rows_per_block = term, rows_per_block
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        u, items, bias, weight, out = ctx.saved_tensors
        term = ctx.term
        grad_u = torch.empty_like(u)
        grad_items = torch.zeros_like(items)
        grad_bias = None if bias is None else torch.zeros_like(bias)
        grad_weight = None if weight is None else torch.zeros_like(weight)
        for start in range(0, len(u), ctx.rows_per_block):
            stop = min(start + ctx.rows_per_block, len(u))
            # d lse_b / d s_bj = softmax_j(s_b): the recomputed block becomes its weights in place.
            p = _block(u, items, bias, term, weight, start, stop)
            p.sub_(out[start:stop, None]).exp_().mul_(grad[start:stop, None])
            torch.mm(p, items, out=grad_u[start:stop])
            grad_items.addmm_(p.T, u[start:stop])
            if grad_bias is not None:
                grad_bias += p.sum(0)
            if grad_weight is not None:
                r, c, v = term.span(start, stop)
                grad_weight += (p[r, c] * v).sum()
        return grad_u, grad_items, grad_bias, grad_weight, None, None


def catalogue_logsumexp(u: Tensor, items: Tensor, bias: Tensor | None = None,
                        term: SparseTerm | None = None, block_scores: int = BLOCK_SCORES) -> Tensor:
    """``[B]`` log-sum-exp over the ``S`` items of each user's scores ``u . items_j + bias_j
    (+ term)``, differentiable in ``u``, ``items``, ``bias`` and the term's weight.

    Args:
        u: ``[B, d]`` user vectors (already scaled, e.g. normalised over the temperature).
        items: ``[S, d]`` item vectors.
        bias: ``[S]`` per-item bias, or None.
        term: a sparse additive term (the social support), or None.
        block_scores: scores per block of rows (at least one row a block).
    """
    rows_per_block = max(1, block_scores // max(1, len(items)))
    return _LogSumExp.apply(u, items, bias, None if term is None else term.weight, term, rows_per_block)
