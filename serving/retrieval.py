"""Candidate retrieval for large catalogues: an approximate nearest-neighbour index per item kind.

Scoring every item is one matrix-vector product over the catalogue, bound by memory bandwidth (about
1 ms per 100k items at 64 dimensions here, so ~10-17 ms at 1M). Past ``min_items`` items in a kind,
an inverted-file index (faiss ``IndexIVFFlat``, inner product) scans only the ``nprobe`` lists
nearest to the user's vector. Each worker holds the index in memory (a copy of the kind's vectors:
~260 MB at 1M items x 65 dimensions); tried and measured slower here: the same index memory-mapped
(~4x per single query) and 8-bit scalar-quantised codes (~3x). Its recall against exact search is measured in ``experiments/scale.md``.
Candidates from the index are re-scored exactly, together with the items the user's contacts
engaged with, so a socially supported item is never lost to the approximation.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalConfig:
    """How a large item kind is narrowed before exact scoring: an ANN index (here) or the
    precomputed candidate table (:mod:`guanxi.serving.candidate_table`); the index wins where both apply.

    Args:
        min_items: kinds with at least this many items use the ANN index (0: never).
        nprobe: inverted lists scanned per query.
        nlist: inverted lists (0: ``4 * sqrt(n)``).
        table_max_scores: build the candidate table for a kind when users x its items is at most
            this (0: never).
        table_min_items: kinds with fewer items are scored in full per request (cheap).
        table_depth: items per user and kind in the table.
    """

    min_items: int = 250_000
    nprobe: int = 64
    nlist: int = 0
    table_max_scores: int = 0
    table_min_items: int = 20_000
    table_depth: int = 600


class KindIndex:
    """An IVF index over one kind's item vectors ``[n, d]`` (positions local to the kind).

    Args:
        vectors: ``[n, d]`` float32 item vectors (may be a memory map).
        config: index parameters.
        cache: optional file: read (memory-mapped) when present, else written after building, so
            several workers share one index.
    """

    def __init__(self, vectors: np.ndarray, config: RetrievalConfig, cache: Path | None = None) -> None:
        import faiss

        n, d = vectors.shape
        self.nprobe = config.nprobe
        if cache is not None and cache.is_file():
            self.index = faiss.read_index(str(cache))
        else:
            nlist = config.nlist or max(16, int(4 * math.sqrt(n)))
            quantizer = faiss.IndexFlatIP(d)
            self.index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            train = vectors[np.sort(rng.choice(n, min(n, 64 * nlist), replace=False))]
            self.index.train(np.ascontiguousarray(train, dtype=np.float32))
            for lo in range(0, n, 200_000):
                self.index.add(np.ascontiguousarray(vectors[lo:lo + 200_000], dtype=np.float32))
            if cache is not None:
                tmp = cache.with_suffix(".tmp")
                faiss.write_index(self.index, str(tmp))
                tmp.replace(cache)
        self.index.nprobe = self.nprobe

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``[q, k]`` local item positions (-1 pads) of the best inner products for ``queries [q, d]``."""
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return ids
