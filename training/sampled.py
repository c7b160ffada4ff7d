"""Mini-batch training on sampled sub-graphs, for graphs too large for a full propagation per step.

A full-graph step propagates every node (26 s per step is the estimate at a million users). Here a
step propagates only what its batch needs: the batch's users, positives and shared negatives are
the targets; :class:`NeighbourSampler` draws up to ``fanouts[l]`` neighbours per node, hop by hop,
from the same normalised adjacency the full model uses, and :func:`sampled_embedding` computes the
targets' LightGCN embeddings (mean over layers ``0..L``) through those blocks. A node with at most
``fanouts[l]`` neighbours keeps all of them with their exact weights; a node with more gets
``fanouts[l]`` draws with replacement, each weighted ``A_ij x degree / fanouts[l]`` (unbiased).
The sampler is our own (NumPy over the CSR arrays): it needs neither pyg-lib nor torch-sparse.

A step copies out the layer-0 rows of its sampled nodes and updates only those rows
(:class:`RowAdam`, lazy Adam), rather than all ``U + I`` of them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from guanxi.training.model import GraphRecommender, sparse_dense_mm


class NeighbourSampler:
    """Samples propagation blocks from a normalised adjacency.

    Args:
        adjacency: ``[N, N]`` normalised adjacency (``torch.sparse_csr_tensor`` or SciPy CSR).
        fanouts: neighbours drawn per node at hop 1, 2, ... (one per propagation layer).
        seed: seed of the sampler's generator.
    """

    def __init__(self, adjacency: Tensor | sp.csr_matrix, fanouts: tuple[int, ...], seed: int = 0) -> None:
        if isinstance(adjacency, Tensor):
            self.indptr = adjacency.crow_indices().numpy()
            self.indices = adjacency.col_indices().numpy()
            self.values = adjacency.values().numpy()
        else:
            self.indptr, self.indices, self.values = adjacency.indptr, adjacency.indices, adjacency.data
        if any(f < 1 for f in fanouts):
            raise ValueError(f"every fanout must be >= 1, got {list(fanouts)}")
        self.num_nodes = len(self.indptr) - 1
        self.fanouts = tuple(fanouts)
        self.rng = np.random.default_rng(seed)
        self._local = np.full(self.num_nodes, -1, dtype=np.int64)  # global -> local, reset per hop

    def _hop(self, dst: np.ndarray, fanout: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled edges ``(row, global col, weight)`` out of the nodes ``dst`` ``[n]``."""
        start, deg = self.indptr[dst], np.diff(self.indptr)[dst]
        small = deg <= fanout
        # Every neighbour of the small-degree nodes, with its exact weight.
        counts = np.where(small, deg, 0)
        row_all = np.repeat(np.arange(len(dst)), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        pos_all = np.repeat(start, counts) + offset
        # ``fanout`` draws with replacement for the rest, reweighted to stay unbiased.
        big = np.flatnonzero(~small)
        row_big = np.repeat(big, fanout)
        pos_big = np.repeat(start[big], fanout) + (self.rng.random(len(row_big)) * np.repeat(deg[big], fanout)).astype(np.int64)
        scale = np.repeat(deg[big] / fanout, fanout)
        rows = np.concatenate([row_all, row_big])
        pos = np.concatenate([pos_all, pos_big])
        weight = self.values[pos].astype(np.float32)
        weight[len(row_all):] *= scale.astype(np.float32)
        return rows, self.indices[pos].astype(np.int64), weight

    def sample(self, targets: np.ndarray) -> tuple[np.ndarray, list["Block"]]:
        """Blocks for the target nodes.

        Args:
            targets: ``[T]`` distinct global node indices.

        Returns:
            ``nodes`` ``[N_L]``, the global indices every block's columns refer to (the targets
            first, then each hop's new nodes), and ``blocks[l]``, a sparse ``[N_l, N_{l+1}]``
            :class:`Block` from hop ``l``'s nodes to hop ``l + 1``'s (``N_0 = T``), nested: hop ``l``'s
            nodes are the first ``N_l`` of hop ``l + 1``'s.
        """
        nodes = np.asarray(targets, dtype=np.int64)
        self._local[nodes] = np.arange(len(nodes))
        blocks = []
        for fanout in self.fanouts:
            n_dst = len(nodes)
            rows, cols, weight = self._hop(nodes, fanout)
            fresh = np.unique(cols[self._local[cols] < 0])
            self._local[fresh] = np.arange(n_dst, n_dst + len(fresh))
            nodes = np.concatenate([nodes, fresh])
            m = sp.csr_matrix((weight, (rows, self._local[cols])), shape=(n_dst, len(nodes)))
            blocks.append(Block(_torch_csr(m), _torch_csr(m.T.tocsr())))  # duplicate draws summed
        self._local[nodes] = -1
        return nodes, blocks


class Block(NamedTuple):
    """One hop: ``matrix`` ``[N_l, N_{l+1}]`` (sparse CSR) and its transpose for the backward pass."""

    matrix: Tensor
    transposed: Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)

    @property
    def nnz(self) -> int:
        return int(self.matrix.values().numel())


def _torch_csr(m: sp.csr_matrix) -> Tensor:
    return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
                                   torch.from_numpy(m.data.astype(np.float32)), m.shape)


class _BlockProduct(torch.autograd.Function):
    """``matrix @ x`` whose gradient uses the stored transpose (no transpose per step)."""

    @staticmethod
    def forward(ctx, matrix: Tensor, transposed: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.transposed = transposed
        return sparse_dense_mm(matrix, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, None, sparse_dense_mm(ctx.transposed, grad)


def sampled_embedding(base: Tensor, blocks: list[Block]) -> Tensor:
    """``[T, d]`` propagated embeddings of the first ``T = blocks[0].shape[0]`` nodes.

    Args:
        base: ``[N_L, d]`` layer-0 vectors of every sampled node (``nodes`` from
            :meth:`NeighbourSampler.sample`, in that order).
        blocks: the ``L`` blocks, hop 1 first.
    """
    z = base
    targets = blocks[0].shape[0]
    total = z[:targets]
    # Hop L's nodes feed hop L-1's: after k products, z is A^k x on hop (L-k)'s nodes.
    for block in reversed(blocks):
        z = _BlockProduct.apply(block.matrix.to(z.device), block.transposed.to(z.device), z)
        total = total + z[:targets]
    return total / (len(blocks) + 1)


class RowAdam:
    """Adam on the rows of an embedding table that a step touched (lazy, like ``SparseAdam``),
    with bias correction by each row's own step count. Cheaper here than sparse gradients:
    the step hands over the touched rows and their dense gradient directly.

    Args:
        weight: ``[R, d]`` the table (updated in place).
        lr, betas, eps: as in Adam.
    """

    def __init__(self, weight: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.weight, self.lr, self.betas, self.eps = weight, lr, betas, eps
        self.m = torch.zeros_like(weight)
        self.v = torch.zeros_like(weight)
        self.steps = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)

    @torch.no_grad()
    def step(self, rows: Tensor, grad: Tensor) -> None:
        """Update ``rows`` ``[n]`` (distinct) with their gradient ``[n, d]``."""
        b1, b2 = self.betas
        t = self.steps.index_select(0, rows) + 1
        self.steps.index_copy_(0, rows, t)
        m = self.m.index_select(0, rows).mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v.index_select(0, rows).mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.m.index_copy_(0, rows, m)
        self.v.index_copy_(0, rows, v)
        step = (self.lr / (1 - b1 ** t))[:, None] * m
        step /= (v / (1 - b2 ** t)[:, None]).sqrt_().add_(self.eps)
        self.weight.index_copy_(0, rows, self.weight.index_select(0, rows).sub_(step))


@dataclass(frozen=True)
class StepStats:
    """One sampled step: its loss, seconds, and how many nodes and block edges it touched."""

    loss: float
    seconds: float
    nodes: int
    edges: int


class SampledTrainer:
    """Training steps of a :class:`GraphRecommender` on sampled blocks.

    Each step copies the layer-0 rows of the sampled nodes out of the model's embedding table,
    propagates them through the blocks, and hands their gradient to :class:`RowAdam`; the other
    parameters (item bias, support weight) take plain Adam.

    Args:
        model: the model; its adjacency is the one sampled from.
        fanouts: neighbours per hop, one per layer (``len == model.num_layers``).
        lr: learning rate of both optimisers.
        temperature, weight_decay: as in :meth:`GraphRecommender.recommendation_loss`.
        seed: the sampler's seed.
        loss: ``softmax`` (shared negatives) or ``bpr`` (one negative per pair).
    """

    def __init__(self, model: GraphRecommender, fanouts: tuple[int, ...], lr: float = 0.005,
                 temperature: float = 0.15, weight_decay: float = 1e-4, seed: int = 0,
                 loss: str = "softmax") -> None:
        if len(fanouts) != model.num_layers:
            raise ValueError(f"need one fanout per layer ({model.num_layers}), got {list(fanouts)}")
        self.model = model
        self.sampler = NeighbourSampler(model.adjacency, fanouts, seed)
        self.temperature = temperature
        self.weight_decay = weight_decay
        self.loss = loss
        self.rows = RowAdam(model.embedding.weight.data, lr)
        rest = [p for name, p in model.named_parameters() if name != "embedding.weight"]
        self.dense_opt = torch.optim.Adam(rest, lr=lr) if rest else None

    def step(self, user_idx: Tensor, pos_idx: Tensor, neg_idx: Tensor) -> StepStats:
        """One optimisation step on pairs ``(user_idx, pos_idx)`` ``[B]`` with negatives
        ``neg_idx`` (item indices: ``[N]`` shared for softmax, ``[B]`` for bpr)."""
        start = time.perf_counter()
        m = self.model
        users = np.unique(user_idx.numpy())
        items = np.unique(np.concatenate([pos_idx.numpy(), neg_idx.numpy()]))
        nodes, blocks = self.sampler.sample(np.concatenate([users, m.num_users + items]))
        rows = torch.from_numpy(nodes)
        base = m.embedding.weight.detach()[rows].requires_grad_()
        emb = sampled_embedding(base, blocks)
        u_rows = torch.from_numpy(np.searchsorted(users, user_idx.numpy()))
        p_rows = len(users) + torch.from_numpy(np.searchsorted(items, pos_idx.numpy()))
        n_rows = len(users) + torch.from_numpy(np.searchsorted(items, neg_idx.numpy()))
        loss = m.pair_loss(emb[u_rows], emb[p_rows], emb[n_rows], user_idx, pos_idx, neg_idx, self.loss,
                           self.temperature, weight_decay=0.0)
        # The L2 of pair_loss, on the same layer-0 rows (targets are the first rows of ``nodes``).
        reg = (base[u_rows].pow(2).sum() + base[p_rows].pow(2).sum() + base[n_rows].pow(2).sum()) / (2 * len(u_rows))
        loss = loss + self.weight_decay * reg
        if not torch.isfinite(loss):  # no step on a broken batch; the caller decides
            return StepStats(float(loss.item()), time.perf_counter() - start, len(nodes), 0)
        if self.dense_opt is not None:
            self.dense_opt.zero_grad()
        loss.backward()
        self.rows.step(rows, base.grad)
        if self.dense_opt is not None:
            self.dense_opt.step()
        edges = sum(b.nnz for b in blocks)
        return StepStats(float(loss.item()), time.perf_counter() - start, len(nodes), edges)

    def epoch(self, pair_user: np.ndarray, pair_item: np.ndarray, batch_size: int, negatives: int,
              generator: torch.Generator, max_steps: int | None = None) -> list[StepStats]:
        """One pass over the pairs ``[P]`` in random batches (at most ``max_steps`` steps)."""
        users, items = torch.from_numpy(pair_user), torch.from_numpy(pair_item)
        perm = torch.randperm(len(users), generator=generator)
        stats = []
        for s in range(0, len(perm), batch_size):
            if max_steps is not None and len(stats) >= max_steps:
                break
            idx = perm[s:s + batch_size]
            n_neg = len(idx) if self.loss == "bpr" else negatives
            neg = torch.randint(0, self.model.num_items, (n_neg,), generator=generator)
            stats.append(self.step(users[idx], items[idx], neg))
        return stats
