"""Pure scoring over a recommendation bundle (no BentoML import): a request in, a slate out.

A known user is scored by their embedding against every item (plus the model's social-support term
when it has one); a user unknown to the model falls back to what their contacts engaged with
(``circle``) or to popular items (``popular``). Candidates are the top ``N`` per item kind, taken
with ``argpartition`` (no full sort); items already consumed are left out; the exposure policy
(:mod:`serving.policy`) then picks the slate and explains it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import ITEM_KINDS
from serving.policy import Candidates, PolicyConfig, SlateItem, UserState, apply_policy
from training.adjacency import circle_weights
from training.bundle import Bundle


@dataclass(frozen=True)
class Scored:
    """Scores ``[I]`` for one user, the fallback used and the consumed item indices."""

    scores: np.ndarray
    fallback: str | None
    consumed: np.ndarray
    contacts: np.ndarray      # [C] contact user_idx
    weight: np.ndarray        # [C] circle weight x strength (the model's social weight)
    strength: np.ndarray      # [C] tie strength
    inner: np.ndarray         # [C] bool, contact is in the user's inner circle


class Recommender:
    """Holds a bundle's arrays in memory and answers recommendation requests.

    Args:
        bundle: a loaded :class:`training.bundle.Bundle`.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.idmap = bundle.idmap
        self._user_pos = {u: i for i, u in enumerate(self.idmap.user_ids.astype(str))}
        self._item_pos = {v: i for i, v in enumerate(self.idmap.item_ids.astype(str))}
        items = bundle.items
        self.item_ids = items["item_id"].astype(str).to_numpy()
        self.kinds = items["kind"].astype(str).to_numpy()
        self.commercial = items["commercial"].fillna(False).astype(bool).to_numpy()
        self.owner_idx = self.idmap.item_index(items["owner_id"].astype(object).where(
            items["owner_id"].notna(), "\0none"))
        category = items["category"].astype(object).where(items["category"].notna(), None)
        codes, _ = pd.factorize(category, use_na_sentinel=True)
        self.category = codes.astype(np.int64)          # -1 when none
        self.kind_items = {k: np.flatnonzero(self.kinds == k) for k in ITEM_KINDS}
        config = bundle.meta.get("config", {})
        self.support_weight = float(bundle.meta.get("support_weight", 0.0))
        self._build_contacts(bundle.circles, float(config.get("inner_weight", 1.0)),
                             float(config.get("outer_weight", 0.3)), bool(config.get("use_circles", True)))

    def _build_contacts(self, circles: pd.DataFrame, inner_w: float, outer_w: float, use_circles: bool) -> None:
        """Contacts per user as CSR arrays (``_c_indptr [U + 1]`` into ``_c_*``)."""
        n = self.idmap.num_users
        if len(circles):
            u = self.idmap.user_index(circles["user_id"])
            v = self.idmap.user_index(circles["friend_id"])
            w = circle_weights(circles, inner_w, outer_w, use_circles)
            ok = (u >= 0) & (v >= 0)
            order = np.argsort(u[ok], kind="stable")
            self._c_user = v[ok][order]
            self._c_weight = w[ok][order]
            self._c_strength = circles["strength"].to_numpy(np.float32)[ok][order]
            self._c_inner = (circles["circle"].to_numpy() == "inner")[ok][order]
            self._c_indptr = np.concatenate([[0], np.cumsum(np.bincount(u[ok], minlength=n))])
        else:
            self._c_user = np.zeros(0, np.int64)
            self._c_weight = self._c_strength = np.zeros(0, np.float32)
            self._c_inner = np.zeros(0, bool)
            self._c_indptr = np.zeros(n + 1, np.int64)

    def user_index(self, user_id: str) -> int:
        """user_idx of ``user_id``, -1 when the model does not know the user."""
        return self._user_pos.get(str(user_id), -1)

    def item_index(self, item_ids: list[str]) -> np.ndarray:
        """``[n]`` item_idx per id, -1 for ids the model does not know."""
        return np.array([self._item_pos.get(str(i), -1) for i in item_ids], dtype=np.int64)

    def _engaged(self, contacts: np.ndarray, values: np.ndarray, reduce: str = "sum") -> np.ndarray:
        """``[I]`` per item: sum (or max) of ``values [C]`` over the contacts who engaged with it."""
        h = self.bundle.history
        out = np.zeros(self.idmap.num_items, np.float32)
        if not len(contacts):
            return out
        starts, ends = h.indptr[contacts], h.indptr[contacts + 1]
        lengths = ends - starts
        if not lengths.sum():
            return out
        idx = np.concatenate([h.indices[s:e] for s, e in zip(starts, ends)])
        vals = np.repeat(values.astype(np.float32), lengths)
        if reduce == "sum":
            np.add.at(out, idx, vals)
        else:
            np.maximum.at(out, idx, vals)
        return out

    def score(self, user_id: str) -> Scored:
        """Score every item for ``user_id`` (see module doc)."""
        b = self.bundle
        u = self.user_index(user_id)
        if u >= 0:
            lo, hi = self._c_indptr[u], self._c_indptr[u + 1]
            contacts, weight = self._c_user[lo:hi], self._c_weight[lo:hi]
            strength, inner = self._c_strength[lo:hi], self._c_inner[lo:hi]
            consumed = b.history.indices[b.history.indptr[u]:b.history.indptr[u + 1]]
        else:
            contacts = np.zeros(0, np.int64)
            weight = strength = np.zeros(0, np.float32)
            inner = np.zeros(0, bool)
            consumed = np.zeros(0, np.int64)
        parts = (consumed, contacts, weight, strength, inner)
        if u >= 0 and b.user_emb is not None and len(consumed):
            scores = b.item_emb @ b.user_emb[u]
            if self.support_weight:
                scores = scores + self.support_weight * np.log1p(self._engaged(contacts, weight))
            return Scored(scores, None, *parts)
        support = self._engaged(contacts, weight)
        if support.any():
            # Same blend as training.adjacency.circle_scores.
            return Scored(support / support.max() + b.popularity, "circle", *parts)
        return Scored(b.popularity.astype(np.float32), "popular", *parts)

    def social_support(self, user_id: str) -> np.ndarray:
        """``[I]`` ``sum_v w_uv [v engaged with i]`` over the user's contacts ``v`` (the model's
        social weights ``w_uv`` = circle weight x tie strength)."""
        u = self.user_index(user_id)
        if u < 0:
            return np.zeros(self.idmap.num_items, np.float32)
        lo, hi = self._c_indptr[u], self._c_indptr[u + 1]
        return self._engaged(self._c_user[lo:hi], self._c_weight[lo:hi])

    def candidates(self, scored: Scored, n_per_kind: int, kinds: list[str] | None = None,
                   exclude: np.ndarray | None = None) -> np.ndarray:
        """Item indices: the top ``n_per_kind`` of each requested kind by score, consumed (and
        ``exclude``) items left out, without a full sort."""
        scores = scored.scores.astype(np.float32, copy=True)
        scores[scored.consumed] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        out = []
        for kind in kinds or ITEM_KINDS:
            pool = self.kind_items.get(kind)
            if pool is None or not len(pool):
                continue
            s = scores[pool]
            n = min(n_per_kind, len(pool))
            top = np.argpartition(-s, n - 1)[:n] if n < len(pool) else np.arange(len(pool))
            top = top[np.isfinite(s[top])]
            out.append(pool[top])
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def describe(self, scored: Scored, cand: np.ndarray, impressions: np.ndarray | None = None) -> Candidates:
        """The policy's view of candidates ``cand [N]``: support, self-sought, impressions."""
        inner_support = self._engaged(scored.contacts[scored.inner], scored.strength[scored.inner])
        outer = ~scored.inner
        outer_strength = self._engaged(scored.contacts[outer], scored.strength[outer], reduce="max")
        engaged = self._engaged(scored.contacts, np.ones(len(scored.contacts), np.float32))
        mine = scored.consumed
        sought_owners = np.union1d(mine, self.owner_idx[mine][self.owner_idx[mine] >= 0])
        sought_cats = np.unique(self.category[mine][self.category[mine] >= 0])
        owner = self.owner_idx[cand]
        self_sought = (np.isin(cand, sought_owners) | ((owner >= 0) & np.isin(owner, sought_owners))
                       | ((self.category[cand] >= 0) & np.isin(self.category[cand], sought_cats)))
        return Candidates(
            item_idx=cand, score=scored.scores[cand].astype(np.float64), commercial=self.commercial[cand],
            owner_idx=owner, inner_support=inner_support[cand].astype(np.float64),
            outer_strength=outer_strength[cand].astype(np.float64),
            contacts_engaged=np.rint(engaged[cand]).astype(np.int64), self_sought=self_sought,
            impressions=impressions if impressions is not None else np.zeros(len(cand), np.int64))

    def recommend(self, user_id: str, k: int, policy: PolicyConfig, kinds: list[str] | None = None,
                  muted_ids: list[str] = (), commercial_opt_out: bool = False,
                  impressions: dict[str, int] | None = None) -> tuple[str | None, list[SlateItem]]:
        """The slate for one request: fallback used and at most ``k`` items, best first.

        Args:
            user_id: external user id (unknown ids are served by the fallback, never an error).
            k: slate size, >= 1.
            policy: the exposure policy.
            kinds: item kinds to draw from (default all).
            muted_ids: ids the user muted (items or owners).
            commercial_opt_out: leave out every commercial item.
            impressions: item_id -> times shown to the user inside the frequency window.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scored = self.score(user_id)
        muted = self.item_index(list(muted_ids))
        muted = muted[muted >= 0]
        muted_owned = np.flatnonzero(np.isin(self.owner_idx, muted)) if len(muted) else muted
        cand = self.candidates(scored, policy.candidates_per_kind(k), kinds,
                               exclude=np.concatenate([muted, muted_owned]))
        shown = np.zeros(len(cand), np.int64)
        if impressions:
            pos = {int(i): n for i, n in zip(self.item_index(list(impressions)), impressions.values()) if i >= 0}
            shown = np.array([pos.get(int(i), 0) for i in cand], np.int64)
        state = UserState(consumed=scored.consumed, muted=muted, commercial_opt_out=commercial_opt_out)
        return scored.fallback, apply_policy(self.describe(scored, cand, shown), state, policy, k,
                                             scored.fallback)

    def top_items(self, user_id: str, k: int = 20) -> list[tuple[str, float]]:
        """The ``k`` best (item_id, score) pairs by the model alone (no policy), consumed items
        left out."""
        ranked, _ = self.rank(user_id, k)
        return [(str(self.item_ids[i]), float(s)) for i, s in ranked]

    def rank(self, user_id: str, k: int, allowed: np.ndarray | None = None
             ) -> tuple[list[tuple[int, float]], str | None]:
        """Top ``k`` (item_idx, score) for ``user_id`` among ``allowed`` items (bool ``[I]``)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scored = self.score(str(user_id))
        scores = scored.scores.astype(np.float32, copy=True)
        scores[scored.consumed] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])], scored.fallback
