"""Full-ranking evaluation, chunked over users (never a dense users x items matrix at once).

Protocol (docs/contracts.md): rank every item of the universe; leave out the user's training items;
count every test user, ranking cold-start users (no training interaction) by the fallback; count
every test pair in ``|test|``. Breakdowns: per item kind (ranking within that kind), per sparsity
group (< 10, 10-49, >= 50 training interactions) and for cold-start users.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from guanxi.training.metrics import KS, mean_metrics, hits_matrix

logger = logging.getLogger(__name__)

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
SPARSITY_GROUPS = (("<10", 0, 10), ("10-49", 10, 50), (">=50", 50, None))


@dataclass(frozen=True)
class RankingTask:
    """What one evaluation needs.

    Args:
        num_items: size of the item universe.
        exclude: ``[num_users, num_items]`` CSR of known interactions left out of the ranking.
        train_count: ``[num_users]`` distinct training items per user (sparsity groups; 0 = cold).
        test_user, test_item: ``[num_test]`` the pairs to find (duplicates removed).
        item_kind: ``[num_items]`` kind name of every item.
        unranked: optional ``[num_users]`` further test pairs per user whose item the model cannot
            rank (outside its catalogue): they count in ``|test|`` and are never hit.
    """

    num_items: int
    exclude: sp.csr_matrix
    train_count: np.ndarray
    test_user: np.ndarray
    test_item: np.ndarray
    item_kind: np.ndarray
    unranked: np.ndarray | None = None

    def users(self) -> np.ndarray:
        """The users the task counts: those with a test pair or an unranked one, sorted."""
        users = np.unique(self.test_user)
        return users if self.unranked is None else np.union1d(users, np.flatnonzero(self.unranked))


def sample_users(task: RankingTask, max_users: int, seed: int = 0) -> RankingTask:
    """``task`` cut to a seeded uniform sample of at most ``max_users`` of its users (every test pair
    and unranked count of a kept user stays); the task itself when it has no more users than that
    or ``max_users`` is 0."""
    users = task.users()
    if max_users <= 0 or len(users) <= max_users:
        return task
    kept = np.zeros(len(task.train_count), dtype=bool)
    kept[np.random.default_rng(seed).choice(users, max_users, replace=False)] = True
    keep = kept[task.test_user]
    unranked = None if task.unranked is None else np.where(kept, task.unranked, 0)
    return replace(task, test_user=task.test_user[keep], test_item=task.test_item[keep], unranked=unranked)


def _chunk_size(num_items: int) -> int:
    # ~64 MB of float32 scores per chunk whatever the catalogue size.
    return int(max(16, min(4096, 16_000_000 // max(num_items, 1))))


@torch.no_grad()
def rank_top_k(score: ScoreFn, users: np.ndarray, exclude: sp.csr_matrix, k: int,
               allowed: torch.Tensor | None = None, progress: bool = False) -> np.ndarray:
    """Top-``k`` item indices per user, training items left out.

    Args:
        score: maps ``[n]`` user indices to ``[n, num_items]`` scores: a tensor the ranking may
            overwrite (a fresh one, or a non-contiguous view such as an expanded row, which is
            copied first).
        users: ``[n]`` user indices.
        exclude: CSR of items to leave out per user.
        k: list length.
        allowed: optional ``[num_items]`` bool mask of rankable items.

    Returns:
        ``[n, k]`` item indices, best first; -1 where fewer than ``k`` items are rankable.
    """
    out = np.full((len(users), k), -1, dtype=np.int64)
    step = _chunk_size(exclude.shape[1])
    for s in tqdm(range(0, len(users), step), disable=not progress, desc="ranking", leave=False):
        chunk = users[s:s + step]
        scores = score(torch.from_numpy(chunk))
        if scores.dtype != torch.float32 or not scores.is_contiguous():   # e.g. an expanded row: copy
            scores = scores.float().contiguous()                          # before masking in place
        _mask_rows(scores, exclude, chunk)
        if allowed is not None:
            scores[:, ~allowed] = -torch.inf
        kk = min(k, scores.shape[1])
        val, idx = torch.topk(scores, kk, dim=1)
        idx[torch.isneginf(val)] = -1
        out[s:s + len(chunk), :kk] = idx.numpy()
    return out


def _mask_rows(scores: torch.Tensor, exclude: sp.csr_matrix, rows: np.ndarray) -> None:
    sub = exclude[rows]
    if sub.nnz:
        r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
        scores[torch.from_numpy(r), torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf


def evaluate_ranking(score: ScoreFn, task: RankingTask, fallback: ScoreFn | None = None,
                     ks: tuple[int, ...] = KS, breakdowns: bool = True,
                     progress: bool = False) -> dict:
    """Metrics on ``task`` for a scoring function.

    Args:
        score: the model's scores ``[n] -> [n, num_items]``.
        task: pairs to find and items to leave out.
        fallback: scores for cold-start users (default: ``score`` itself).
        ks: cut-offs.
        breakdowns: also compute per kind, per sparsity group and cold-start metrics.

    Returns:
        ``{"recall_at_10": ..., ..., "users": n, "breakdowns": {...}}``.
    """
    k_max = max(ks)
    users = task.users()
    n_test_all = np.bincount(task.test_user, minlength=len(task.train_count))
    if task.unranked is not None:
        n_test_all = n_test_all + task.unranked
    cold = task.train_count[users] == 0

    def combined(u: torch.Tensor) -> torch.Tensor:
        s = score(u)
        if fallback is None:
            return s
        is_cold = torch.from_numpy(task.train_count[u.numpy()] == 0)
        if is_cold.any():
            s = s.float().contiguous()
            s[is_cold] = fallback(u[is_cold]).to(s.dtype)
        return s

    keys = np.sort(task.test_user.astype(np.int64) * task.num_items + task.test_item)

    topk = rank_top_k(combined, users, task.exclude, k_max, progress=progress)
    hits = hits_matrix(topk, users, keys, task.num_items)
    result: dict = mean_metrics(hits, n_test_all[users], ks)
    result["users"] = int(len(users))
    if not breakdowns:
        return result

    groups: dict[str, dict] = {}
    counts = task.train_count[users]
    for name, lo, hi in SPARSITY_GROUPS:
        sel = (counts >= lo) & (counts < hi if hi is not None else True)
        groups[name] = {**mean_metrics(hits[sel], n_test_all[users][sel], ks), "users": int(sel.sum())}
    by_kind: dict[str, dict] = {}
    kinds = np.unique(task.item_kind)
    if len(kinds) > 1:
        test_kind = task.item_kind[task.test_item]
        for kind in kinds:
            sel_pairs = test_kind == kind
            k_users = np.unique(task.test_user[sel_pairs])
            if len(k_users) == 0:
                continue
            allowed = torch.from_numpy(task.item_kind == kind)
            k_top = rank_top_k(combined, k_users, task.exclude, k_max, allowed)
            k_keys = np.sort(task.test_user[sel_pairs].astype(np.int64) * task.num_items
                             + task.test_item[sel_pairs])
            k_n = np.bincount(task.test_user[sel_pairs], minlength=len(task.train_count))[k_users]
            by_kind[str(kind)] = {**mean_metrics(hits_matrix(k_top, k_users, k_keys, task.num_items),
                                                 k_n, ks), "users": int(len(k_users))}
    result["breakdowns"] = {
        "sparsity": groups,
        "cold_start": {**mean_metrics(hits[cold], n_test_all[users][cold], ks), "users": int(cold.sum())},
        "kind": by_kind,
    }
    return result
