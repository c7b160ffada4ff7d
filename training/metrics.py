"""Top-K ranking metrics with binary relevance (docs/contracts.md, "Evaluation protocol").

For a user with test set T and ranked list L (length >= K):
- ``recall@K    = |L[:K] ∩ T| / |T|``
- ``precision@K = |L[:K] ∩ T| / K``
- ``ndcg@K      = sum_{r < K, L[r] in T} 1 / log2(r + 2)  /  sum_{r < min(|T|, K)} 1 / log2(r + 2)``
Each is averaged over users with a non-empty test set.
"""
from __future__ import annotations

import numpy as np

KS: tuple[int, ...] = (10, 20)
METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "precision")


def metric_keys(ks: tuple[int, ...] = KS) -> list[str]:
    """``recall_at_10``, ``ndcg_at_10``, ... in the order used everywhere."""
    return [f"{m}_at_{k}" for k in ks for m in METRIC_NAMES]


def hits_matrix(topk: np.ndarray, users: np.ndarray, test_keys: np.ndarray, num_items: int) -> np.ndarray:
    """Which recommended items are test items.

    Args:
        topk: ``[n, K]`` recommended item indices per row (best first); -1 pads short lists.
        users: ``[n]`` user index of each row.
        test_keys: sorted ``user * num_items + item`` of every test pair.
        num_items: size of the item universe.

    Returns:
        ``[n, K]`` boolean.
    """
    if topk.ndim != 2 or len(users) != topk.shape[0]:
        raise ValueError(f"topk must be [n, K] with n == len(users); got {topk.shape} and {len(users)}")
    keys = users[:, None].astype(np.int64) * num_items + topk
    pos = np.searchsorted(test_keys, keys)
    pos = np.minimum(pos, max(len(test_keys) - 1, 0))
    found = (test_keys[pos] == keys) if len(test_keys) else np.zeros(keys.shape, bool)
    return found & (topk >= 0)


def user_metrics(hits: np.ndarray, n_test: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user recall, ndcg and precision at ``k``.

    Args:
        hits: ``[n, >=k]`` boolean hits in rank order.
        n_test: ``[n]`` size of each user's test set (> 0).
        k: cut-off.

    Returns:
        ``{"recall": [n], "ndcg": [n], "precision": [n]}``.
    """
    if k < 1 or hits.shape[1] < k:
        raise ValueError(f"k must be in 1..{hits.shape[1]}, got {k}")
    if np.any(n_test <= 0):
        raise ValueError("every user needs at least one test item; got n_test <= 0")
    h = hits[:, :k].astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = h @ discount
    ideal = np.cumsum(discount)[np.minimum(n_test, k) - 1]
    n_hit = h.sum(axis=1)
    return {"recall": n_hit / n_test, "ndcg": dcg / ideal, "precision": n_hit / k}


def mean_metrics(hits: np.ndarray, n_test: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Averages over users: ``{"recall_at_10": ..., "ndcg_at_10": ..., ...}``; NaN with no users."""
    out: dict[str, float] = {}
    for k in ks:
        per_user = user_metrics(hits, n_test, k) if len(n_test) else None
        for m in METRIC_NAMES:
            out[f"{m}_at_{k}"] = float(per_user[m].mean()) if per_user is not None else float("nan")
    return out
