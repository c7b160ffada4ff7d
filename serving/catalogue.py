"""A served model's catalogue: what each item is (kind, commercial, owner, category), and the two
selections a request makes over it: the top candidates per kind, and the facts the exposure policy
reads about them (:class:`guanxi.serving.policy.Candidates`).

Commerce is inherited through ownership: content published by a commercial (sponsored) account is
commercial for trust gating, the commercial share and opt-out, and is reported as such.

Self-sought means the user's own deliberate engagement: an event of one of the policy's
``self_sought_types`` (default ``follow`` and ``pay``) on the item itself, on its owner (following
an account makes its posts self-sought), or on an item of its category (paying at one restaurant
makes restaurants self-sought). Being shown, viewing or reading a post is not deliberate, so it
never makes the post's account self-sought.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from guanxi.features.ids import IdMap
from guanxi.features.schema import ITEM_KINDS
from guanxi.serving.contacts import aggregates
from guanxi.serving.policy import Candidates
from guanxi.serving.scores import Scored, top_n


class Catalogue:
    """Per item ``[I]``: id, kind, commercial (inherited from the owner), owner, category.

    Args:
        items: the bundle's items table in ``idmap`` order.
        idmap: the model's ids.
    """

    def __init__(self, items: pd.DataFrame, idmap: IdMap) -> None:
        self.num_items = idmap.num_items
        self.item_ids = items["item_id"].astype(str).to_numpy()
        self.kinds = items["kind"].astype(str).to_numpy()
        self.owner_idx = idmap.item_index(items["owner_id"].astype(object).where(items["owner_id"].notna(), "\0none"))
        own = items["commercial"].fillna(False).astype(bool).to_numpy()
        self.commercial = own | ((self.owner_idx >= 0) & own[np.maximum(self.owner_idx, 0)])
        category = items["category"].astype(object).where(items["category"].notna(), None)
        codes, _ = pd.factorize(category, use_na_sentinel=True)
        self.category = codes.astype(np.int64)          # -1 when none
        self.n_categories = int(codes.max()) + 1 if len(codes) else 0
        self.kind_items = {k: np.flatnonzero(self.kinds == k) for k in ITEM_KINDS}
        self.kind_id = {k: i for i, k in enumerate(ITEM_KINDS)}
        self.kind_code = np.full(len(self.kinds), -1, np.int8)
        for k, p in self.kind_items.items():
            self.kind_code[p] = self.kind_id[k]
        # Kinds stored as one contiguous index range are sliced as views (no gather per request).
        self.kind_span = {k: (int(p[0]), int(p[-1]) + 1) for k, p in self.kind_items.items()
                          if len(p) and p[-1] - p[0] + 1 == len(p)}

    def candidates(self, scored: Scored, n_per_kind: int, kinds: list[str] | None = None,
                   exclude: np.ndarray | None = None, retrieved_kinds: frozenset[str] = frozenset(),
                   allowed: np.ndarray | None = None) -> np.ndarray:
        """Item indices: the top ``n_per_kind`` of each requested kind (each kind once) by score,
        consumed (and ``exclude``) items left out, without a full sort. For ``retrieved_kinds`` only
        ``scored.scored_items`` carry a score. ``allowed``: ``[I]`` bool, only these items."""
        scores = scored.scores                       # fresh per request: masked in place
        scores[scored.consumed] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        out = []
        for kind in dict.fromkeys(kinds or ITEM_KINDS):
            pool = self.kind_items.get(kind)
            if pool is None or not len(pool):
                continue
            if scored.scored_items is not None and (kind in retrieved_kinds or kind in (scored.table or ())):
                pool = scored.scored_items[self.kind_code[scored.scored_items] == self.kind_id[kind]]
                s = scores[pool]
            else:
                span = self.kind_span.get(kind)
                s = scores[span[0]:span[1]] if span is not None else scores[pool]   # a view when contiguous
            if allowed is not None:
                keep = allowed[pool]
                pool, s = pool[keep], s[keep]
                if not len(pool):
                    continue
            top = top_n(s, min(n_per_kind, len(pool)))
            out.append(pool[top[np.isfinite(s[top])]])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def describe(self, scored: Scored, cand: np.ndarray, impressions: np.ndarray | None = None,
                 sought_types: int = 0, sought: np.ndarray | None = None) -> Candidates:
        """The policy's view of candidates ``cand [N]``: support, self-sought, impressions.
        ``sought_types`` is the bit mask of event types that count as deliberate; ``sought``
        further items the user deliberately engaged with (since the version was trained)."""
        items, n = scored.c_items, len(cand)
        inner_support, outer_strength = np.zeros(n, np.float64), np.zeros(n, np.float64)
        engaged = np.zeros(n, np.int64)
        if len(items):
            # Per (contact, item) entry, then per contact item, then at the candidates among them.
            at = np.minimum(np.searchsorted(items, cand), len(items) - 1)
            hit = items[at] == cand
            at = at[hit]
            per_item = scored.facts if scored.facts is not None else aggregates(scored)
            inner_support[hit], engaged[hit], outer_strength[hit] = (a[at] for a in per_item)
        owner = self.owner_idx[cand]
        return Candidates(
            item_idx=cand, score=scored.scores[cand].astype(np.float64), commercial=self.commercial[cand],
            owner_idx=owner, inner_support=inner_support, outer_strength=outer_strength,
            contacts_engaged=engaged, self_sought=self.self_sought(scored, cand, sought_types, sought),
            impressions=impressions if impressions is not None else np.zeros(n, np.int64))

    def self_sought(self, scored: Scored, cand: np.ndarray, sought_types: int,
                    extra: np.ndarray | None = None) -> np.ndarray:
        """``[N]`` bool: the user deliberately engaged with the candidate, its owner or its category
        (in the version's history, or ``extra``: since it was trained)."""
        if (scored.consumed_types is None or not sought_types) and (extra is None or not len(extra)):
            return np.zeros(len(cand), bool)
        mine = scored.consumed[(scored.consumed_types & sought_types) != 0] if (
            scored.consumed_types is not None and sought_types) else np.zeros(0, np.int64)
        if extra is not None and len(extra):
            mine = np.concatenate([mine, extra])
        if not len(mine):
            return np.zeros(len(cand), bool)
        # Marks over the (small) id spaces instead of set operations: cheaper per request.
        sought = np.zeros(self.num_items + 1, bool)            # slot -1 = "no owner", never set
        sought[mine] = True
        sought[self.owner_idx[mine]] = True
        sought[-1] = False
        cats = np.zeros(self.n_categories + 1, bool)
        cats[self.category[mine]] = True
        cats[-1] = False
        return sought[cand] | sought[self.owner_idx[cand]] | cats[self.category[cand]]
