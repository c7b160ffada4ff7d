"""guanxi's social-support term: what a user's contacts engaged with, ``log1p(sum_v w_uv known[v, i])``.

Stored as a SciPy CSR matrix while it is small; past :data:`MAX_STORED_SUPPORT` entries (an upper
bound, counted before the product) its rows are computed per batch instead (:class:`SupportRows`):
at a million users the ``[U, I]`` matrix would hold hundreds of millions of entries.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

MAX_STORED_SUPPORT = 50_000_000


def social_support(weights: sp.csr_matrix, known: sp.csr_matrix) -> "sp.csr_matrix | SupportRows":
    """``[U, I]`` support of circle weights ``weights`` ``[U, U]`` over engagement ``known``
    ``[U, I]``: a CSR matrix, or :class:`SupportRows` when it could exceed
    :data:`MAX_STORED_SUPPORT` entries."""
    contacts = sp.csr_matrix((np.ones(weights.nnz), weights.indices, weights.indptr), shape=weights.shape)
    bound = float((contacts @ np.diff(known.indptr).astype(np.float64)).sum())
    if bound > MAX_STORED_SUPPORT:
        return SupportRows(weights, known)
    support = (weights @ known).tocsr()
    support.data = np.log1p(support.data).astype(np.float32)
    return support


class SupportRows:
    """Social support computed per batch instead of stored: rows of ``log1p(weights @ known)``.

    At a million users the ``[U, I]`` support matrix would hold hundreds of millions of entries;
    this computes only the rows a batch asks for. Indexes like a SciPy CSR matrix the way
    :class:`GraphRecommender` uses its ``support``: ``s[rows]`` and ``s[rows, cols]``.

    Args:
        weights: ``[U, U]`` CSR of circle weights ``w_uv``.
        known: ``[U, I]`` CSR of training engagement.
    """

    def __init__(self, weights: sp.csr_matrix, known: sp.csr_matrix) -> None:
        self.weights = weights
        self.known = known
        self.shape = (weights.shape[0], known.shape[1])

    def _rows(self, rows: np.ndarray) -> sp.csr_matrix:
        out = (self.weights[rows] @ self.known).tocsr()
        out.data = np.log1p(out.data).astype(np.float32)
        return out

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, cols = key
            return np.asarray(self._rows(np.asarray(rows))[np.arange(len(rows)), np.asarray(cols)]).ravel()
        return self._rows(np.asarray(key))
