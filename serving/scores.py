"""A user's scores over the catalogue (:class:`Scored`) and the selections made from them: the
top ``n`` without a sort, distinct item indices. Used by :mod:`guanxi.serving.recommender`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scored:
    """Scores ``[I]`` for one user (a fresh array), the fallback used and the consumed item indices."""

    scores: np.ndarray
    fallback: str | None
    consumed: np.ndarray
    contacts: np.ndarray      # [C] contact user_idx
    weight: np.ndarray        # [C] circle weight x strength (the model's social weight)
    strength: np.ndarray      # [C] tie strength
    inner: np.ndarray         # [C] bool, contact is in the user's inner circle
    c_items: np.ndarray       # [m] sorted items some contact engaged with
    c_inverse: np.ndarray     # [e] per (contact, item) entry: position in c_items
    c_entry: np.ndarray       # [e] per entry: position of the contact in ``contacts``
    scored_items: np.ndarray | None = None   # retrieval: the only items of retrieved kinds with a score
                                             # (the others hold garbage; never read them)
    table: dict[str, np.ndarray] | None = None   # candidate-table rows used, per kind
    # precomputed per c_item (guanxi.serving.contact_facts): inner_support, engaged, outer_strength [m];
    # when set, c_inverse and c_entry are empty
    facts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # [len(consumed)] event-type bit masks of the consumed items (None: the bundle has none)
    consumed_types: np.ndarray | None = None
    # items only the contacts' recent engagements (since the version was trained) brought in:
    # candidates whatever their rank (guanxi.serving.recent)
    recent_items: np.ndarray | None = None


def top_n(s: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest values of ``s [m]``, unordered, without sorting ``s``.

    For a large ``s``, a strided sample gives a threshold that a few times ``n`` values pass;
    only those are partitioned (one comparison pass over ``s`` instead of a partition of it).
    Falls back to a full ``argpartition`` when too few pass.
    """
    m = len(s)
    if n >= m:
        return np.arange(m)
    if m > 64 * n and m > 8192:
        stride = m // 4096
        sample = s[::stride]
        q = min(len(sample) - 1, int(np.ceil(4 * n * len(sample) / m)) + 8)   # ~4n pass on average
        thr = np.partition(sample, len(sample) - 1 - q)[len(sample) - 1 - q]
        idx = np.flatnonzero(s >= thr)
        if len(idx) >= n:
            return idx[np.argpartition(s[idx], len(idx) - n)[len(idx) - n:]]
    return np.argpartition(s, m - n)[m - n:]


def distinct(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``a [n]`` (``np.unique`` costs several times more on the few
    hundred item indices of a request)."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if len(a) else a
