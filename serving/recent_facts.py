"""One served version's reading of the recent view (:mod:`guanxi.serving.recent`): external ids
mapped to this version's indices, per user, cached until that user's events change.

Items the version has never seen are left out: they keep today's rule (not served until a
catalogue update classifies them), so they neither join candidates nor open trusted paths.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np

from guanxi.serving.recent import RecentView

# Cached users per version before the cache starts afresh (each entry is a few small arrays).
CACHE_USERS = 50_000


@dataclass(frozen=True)
class OwnRecent:
    """A user's recent engagements with items this version knows: ``items [n]``, their event
    types as bit masks ``bits [n]`` (bit ``t`` for ``ITEM_EVENT_TYPES[t]``, as in the bundle), the
    type codes ``types [n]`` and when each was received ``ts [n]`` (seconds)."""

    items: np.ndarray
    bits: np.ndarray
    types: np.ndarray
    ts: np.ndarray


class RecentLookup:
    """See the module doc.

    Args:
        view: the worker's recent view.
        item_pos: item_id -> item_idx of the version.
        user_ids: ``[U]`` the version's user ids (contacts are user indices).
        owner_idx: ``[I]`` each item's account (-1 when none).
        kind_code: ``[I]`` kind code per item (:class:`guanxi.serving.catalogue.Catalogue`).
        reconsumable: kind codes whose items may be served again after an engagement.
    """

    def __init__(self, view: RecentView, item_pos: dict[str, int], user_ids: np.ndarray, owner_idx: np.ndarray,
                 kind_code: np.ndarray, reconsumable: tuple[int, ...] = ()) -> None:
        self.view = view
        self.item_pos = item_pos
        self.user_ids = user_ids
        self.owner_idx = owner_idx
        self.kind_code = kind_code
        self.reconsumable = np.asarray(reconsumable, np.int8)
        self._own: dict[str, tuple[int, OwnRecent]] = {}
        self._engaged: dict[str, tuple[int, np.ndarray]] = {}

    def _index(self, ids: list[str]) -> np.ndarray:
        return np.fromiter(map(self.item_pos.get, ids, repeat(-1)), np.int64, len(ids))

    def own(self, user_id: str) -> OwnRecent:
        """The user's recent engagements with known items (cached per generation)."""
        gen = self.view.generation(user_id)
        hit = self._own.get(user_id)
        if hit is not None and hit[0] == gen:
            return hit[1]
        events = self.view.own(user_id)
        items = self._index([e[1] for e in events])
        types = np.fromiter((e[2] for e in events), np.int64, len(events))
        ts = np.fromiter((e[3] for e in events), np.float64, len(events))
        known = items >= 0
        out = OwnRecent(items[known], np.left_shift(1, types[known]), types[known], ts[known])
        self._remember(self._own, user_id, (gen, out))
        return out

    def consumed(self, own: OwnRecent) -> np.ndarray:
        """Of ``own``, the items not to serve again: those of kinds that are not re-consumable."""
        if not len(self.reconsumable) or not len(own.items):
            return own.items
        return own.items[~np.isin(self.kind_code[own.items], self.reconsumable)]

    def hidden(self, user_id: str, now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(items hidden [h], their accounts [a])`` within the fatigue period: an item's account
        is its owner, or the item itself when it has none (an account, a merchant)."""
        ids = self.view.hidden(user_id, now)
        if not ids:
            empty = np.zeros(0, np.int64)
            return empty, empty
        items = self._index(ids)
        items = items[items >= 0]
        owners = self.owner_idx[items]
        return items, np.unique(np.where(owners >= 0, owners, items))

    def contact_pairs(self, contacts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(contact position [x], item_idx [x])``: the recent engagements of ``contacts`` (user
        indices of this version) with known items, or None when they have none."""
        if not len(contacts):
            return None
        ids = self.user_ids[contacts].tolist()
        found = self.view.active(ids)
        if not found:
            return None
        pos, items = [], []
        for p in found:
            idx = self._engaged_items(ids[p])
            if len(idx):
                pos.append(np.full(len(idx), p, np.int64))
                items.append(idx)
        if not pos:
            return None
        return np.concatenate(pos), np.concatenate(items)

    def _engaged_items(self, user_id: str) -> np.ndarray:
        gen = self.view.generation(user_id)
        hit = self._engaged.get(user_id)
        if hit is not None and hit[0] == gen:
            return hit[1]
        idx = self._index([e[1] for e in self.view.own(user_id)])
        idx = np.unique(idx[idx >= 0])
        self._remember(self._engaged, user_id, (gen, idx))
        return idx

    @staticmethod
    def _remember(cache: dict, key: str, value: tuple) -> None:
        if len(cache) >= CACHE_USERS:
            cache.clear()
        cache[key] = value
