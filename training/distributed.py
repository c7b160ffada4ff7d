"""Data-parallel training on PyTorch's own engine (``torchrun``, DDP; gloo on CPU, NCCL on GPU).

Every process builds the same graph and model (same seed); the training pairs of each epoch are
split across processes, each step runs the batch loss through ``DistributedDataParallel``, which
averages the gradients, so every replica keeps identical weights. With identical weights, every
process reaches the same validation numbers and the same early-stopping decision without talking;
only the time-budget stop (wall clocks differ) is agreed on explicitly. Rank 0 alone evaluates on
test and writes outputs.

    torchrun --nproc-per-node 2 -m guanxi.app.cli train --data DIR --no-track --metrics-json m.json
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``...). A plain process (no ``WORLD_SIZE`` or 1) gets a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size())


def current() -> DistContext:
    """The context of an already initialised group (single process otherwise)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


class BatchLoss(torch.nn.Module):
    """The model's batch loss as a ``forward`` (what DDP synchronises the backward of)."""

    def __init__(self, model: torch.nn.Module, loss: str, temperature: float, weight_decay: float) -> None:
        super().__init__()
        self.model = model
        self.loss, self.temperature, self.weight_decay = loss, temperature, weight_decay

    def forward(self, users: Tensor, pos: Tensor, neg: Tensor, sample: Tensor | None = None) -> Tensor:
        """Pair losses: ``pos [B]`` positives, ``neg`` negatives. ``multinomial``: ``pos`` and ``neg``
        are the positives' rows (into ``users``) and items, ``sample`` the items standing in for the
        catalogue (:meth:`GraphRecommender.multinomial_loss`)."""
        m = self.model
        if self.loss == "multinomial":
            return m.multinomial_loss(m.get_embedding(), users, pos, neg, self.temperature, self.weight_decay,
                                      sample)
        return m.recommendation_loss(m.get_embedding(), users, pos, neg, self.loss, self.temperature,
                                     self.weight_decay)


def wrap(loss_module: BatchLoss, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel`` around the loss when several processes train, else itself."""
    if not ctx.active:
        return loss_module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)


def shard(perm: Tensor, ctx: DistContext) -> Tensor:
    """This process's share of an epoch's permutation (equal sizes, so every rank steps together)."""
    if not ctx.active:
        return perm
    usable = len(perm) - len(perm) % ctx.world_size
    return perm[ctx.rank:usable:ctx.world_size]


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when it is true on any (e.g. one rank's time budget ran out)."""
    if not ctx.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
