"""What a request needs of the items a user's contacts engaged with, precomputed per model version.

Besides its candidate-table row (:mod:`guanxi.serving.candidate_table`), a request scores the items its
user's contacts engaged with (the only items the social term changes) and, for the policy, sums
their contacts' ties per item. None of that depends on the request: contacts, histories, ties and
embeddings are fixed within a served version. So, alongside the table, the recommender computes
it once per version, with the same code a request would run, and a request reads its row.

Per user (CSR, ``indptr [U + 1]``), one entry per contact item, sorted by item: ``items`` (int32),
``score`` (float32: model score plus the social term, as the request computes it),
``inner_support`` (float64: sum of inner-circle tie strengths), ``engaged`` (int32: contacts who
engaged) and ``outer_strength`` (float32: strongest outer-circle tie). 24 bytes an entry: about
140 MB for 20k users with ~280 contact items each. Cached beside the version as one file (written
atomically, memory-mapped by every worker): ``indptr`` then each column, contiguous.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from guanxi.serving.npy_cache import cached_array

# Column order in the cache file: the float64 column first, so every column stays aligned.
COLUMNS = (("inner_support", np.float64), ("items", np.int32), ("score", np.float32), ("engaged", np.int32),
           ("outer_strength", np.float32))

# user_idx -> (items [m], score [m], inner_support [m], engaged [m], outer_strength [m]), or None
# when the user has no contact items.
PerUser = Callable[[int], "tuple[np.ndarray, ...] | None"]


@dataclass(frozen=True)
class ContactFacts:
    """``indptr [U + 1]`` into the columns ``[E]``."""

    indptr: np.ndarray
    items: np.ndarray
    score: np.ndarray
    inner_support: np.ndarray
    engaged: np.ndarray
    outer_strength: np.ndarray

    def row(self, u: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """User ``u``'s contact items ``[m]`` (sorted), their scores ``[m]``, and per item
        (inner_support, engaged, outer_strength)."""
        lo, hi = self.indptr[u], self.indptr[u + 1]
        return self.items[lo:hi], self.score[lo:hi], (self.inner_support[lo:hi], self.engaged[lo:hi],
                                                       self.outer_strength[lo:hi])


def build_facts(n_users: int, per_user: PerUser, users: np.ndarray) -> ContactFacts:
    """Entries for ``users`` (the others get empty rows) from ``per_user``."""
    names = ("items", "score", "inner_support", "engaged", "outer_strength")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    sizes = np.zeros(n_users, np.int64)
    for u in users.tolist():
        got = per_user(u)
        if got is None or not len(got[0]):
            continue
        sizes[u] = len(got[0])
        for name, values in zip(names, got):
            parts[name].append(values)
    dtypes = dict(COLUMNS)
    columns = {name: (np.concatenate(parts[name]) if parts[name] else np.zeros(0)).astype(dtypes[name])
               for name in names}
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return ContactFacts(indptr, **columns)


def _pack(facts: ContactFacts) -> np.ndarray:
    return np.concatenate([facts.indptr.view(np.uint8)] + [getattr(facts, name).view(np.uint8) for name, _ in COLUMNS])


def _unpack(blob: np.ndarray, n_users: int) -> ContactFacts | None:
    """Column views of a packed file, or None when it does not fit ``n_users``."""
    head = 8 * (n_users + 1)
    if blob.dtype != np.uint8 or len(blob) < head:
        return None
    indptr = blob[:head].view(np.int64)
    e = int(indptr[-1])
    if indptr[0] != 0 or len(blob) != head + 24 * e:
        return None
    columns, at = {}, head
    for name, dtype in COLUMNS:
        width = np.dtype(dtype).itemsize * e
        columns[name] = blob[at:at + width].view(dtype)
        at += width
    return ContactFacts(indptr, **columns)


def load_or_build(cache: Path | None, n_users: int, per_user: PerUser, users: np.ndarray) -> ContactFacts:
    """:func:`build_facts`, read memory-mapped from ``cache`` when it is there and fits, else built
    and written there (atomically: a worker never reads a half-written file)."""
    packed = cached_array(cache, lambda: _pack(build_facts(n_users, per_user, users)),
                          lambda a: _unpack(a, n_users) is not None, "contact facts")
    return _unpack(packed, n_users)
