"""Exact retrieval precomputed per model version: each user's top ``depth`` items of a large kind.

Scoring a request exactly reads the whole item matrix (a matrix-vector product over ~100k items plus
a top-N selection) although the embeddings of a served version never change. The candidate table
does that work once, when a version is loaded: for every user, the ``depth`` best items of each
large kind by the model's score, consumed items left out. A request then scores only its table row
and the items its contacts engaged with, exactly.

Exactness. Let ``T`` be a row, ``s_T`` the lowest model score in it, ``X`` the items a request
excludes (mutes) and ``C`` the contacts' items (the only ones whose score the social term changes).
Every item outside ``T`` and ``C`` scores at most ``s_T``; every item of ``T`` outside ``C`` scores at
least ``s_T``. So when ``|T - X - C| >= N`` the top ``N`` of ``T + C - X`` is the top ``N`` of the
whole kind (:func:`row_suffices`); otherwise the recommender scores that user in full.

The table costs ``users x depth x 8`` bytes (item and score; 20k users x 600: 96 MB) and, at load, one pass of
``users x items`` scores (20k x 100k: about 15 s on 2 cores). It is built only when that pass is at
most ``max_scores`` and cached as ``.npy`` beside the version, memory-mapped by every worker.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from guanxi.serving.npy_cache import cached_array


def build_table(user_emb: np.ndarray, item_emb: np.ndarray, pool: np.ndarray, history: sp.csr_matrix,
                depth: int, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``depth`` best items among ``pool`` by ``user_emb @ item_emb.T``, consumed ones out.

    Args:
        user_emb: ``[U, d]`` user vectors.
        item_emb: ``[I, d]`` item vectors (all kinds).
        pool: ``[n]`` global item indices of the kind, ``n > depth``.
        history: ``[U, I]`` CSR of consumed items.
        depth: items kept per user.
        block: users scored per matrix product.

    Returns:
        ``[U, depth]`` int32 global item indices, unordered within a row (a row starting with -1
        is unusable: the user consumed all but fewer than ``depth`` items of the kind), and
        ``[U, depth]`` float32 their model scores (a request reads them instead of the vectors).
    """
    n = len(pool)
    if depth >= n:
        raise ValueError(f"depth {depth} must be below the kind's {n} items")
    local = np.full(item_emb.shape[0], -1, np.int64)
    local[pool] = np.arange(n)
    vectors = np.ascontiguousarray(item_emb[pool], dtype=np.float32)         # [n, d]
    out = np.empty((user_emb.shape[0], depth), np.int32)
    kept = np.empty((user_emb.shape[0], depth), np.float32)
    for lo in range(0, user_emb.shape[0], block):
        hi = min(lo + block, user_emb.shape[0])
        scores = np.asarray(user_emb[lo:hi], dtype=np.float32) @ vectors.T   # [b, n]
        start, end = history.indptr[lo], history.indptr[hi]
        rows = np.repeat(np.arange(hi - lo), np.diff(history.indptr[lo:hi + 1]))
        cols = local[history.indices[start:end]]
        mine = cols >= 0
        scores[rows[mine], cols[mine]] = -np.inf
        top = np.argpartition(scores, n - depth, axis=1)[:, n - depth:]       # [b, depth]
        out[lo:hi] = pool[top]
        kept[lo:hi] = np.take_along_axis(scores, top, axis=1)
        # A user who consumed nearly the whole kind: the row holds consumed items; mark it unusable.
        short = ~np.isfinite(kept[lo:hi]).all(axis=1)
        out[lo:hi][short, 0] = -1
    return out, kept


def load_or_build(cache: Path | None, user_emb: np.ndarray, item_emb: np.ndarray, pool: np.ndarray,
                  history: sp.csr_matrix, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`build_table`, read memory-mapped from ``cache`` when present, else written there
    (atomically: a worker never reads a half-written table). One file holds both arrays, as
    ``[U, 2, depth]`` int32 (the scores' float32 bits in ``[:, 1]``), so they always match."""
    shape = (user_emb.shape[0], 2, depth)

    def build() -> np.ndarray:
        items, scores = build_table(user_emb, item_emb, pool, history, depth)
        return np.stack([items, scores.view(np.int32)], axis=1)

    packed = cached_array(cache, build, lambda a: a.shape == shape and a.dtype == np.int32, "candidate table")
    return _unpack(packed)


def _unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return packed[:, 0], packed[:, 1].view(np.float32)


def row_suffices(row: np.ndarray, excluded: np.ndarray, contact_items: np.ndarray, n: int) -> bool:
    """True when the top ``n`` of ``row + contact_items - excluded`` is exact (module doc).

    Args:
        row: ``[depth]`` the user's table row.
        excluded: ``[x]`` item indices the request leaves out.
        contact_items: ``[m]`` sorted items the user's contacts engaged with.
        n: candidates wanted from the kind.
    """
    if len(row) < n or row[0] < 0:
        return False
    if len(row) - len(excluded) - len(contact_items) >= n:
        return True                              # even if every excluded and contact item is in the row
    out = np.isin(row, excluded) if len(excluded) else np.zeros(len(row), bool)
    if len(contact_items):
        pos = np.minimum(np.searchsorted(contact_items, row), len(contact_items) - 1)
        out |= contact_items[pos] == row
    return len(row) - int(out.sum()) >= n
