"""From a user's scores to their slate: candidates, the policy's view of them, the exposure policy.

:class:`SlateMaker` is the request half of :class:`guanxi.serving.recommender.Recommender` (which
scores); it reads the scorer's catalogue, recent view and ids through the attributes the
recommender sets. Kept apart so each stays one concept: scoring, and choosing what to show.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from guanxi.serving.candidate_table import row_suffices
from guanxi.serving.intent_now import IntentModel, IntentUse
from guanxi.serving.policy import Candidates, PolicyConfig, SlateItem, UserState, apply_policy
from guanxi.serving.scores import Scored, distinct

if TYPE_CHECKING:
    from guanxi.serving.catalogue import Catalogue
    from guanxi.serving.recent_facts import RecentLookup
    from guanxi.serving.retrieval import KindIndex


class SlateMaker:
    """Candidates, description and policy for one request (see the module doc)."""

    catalogue: "Catalogue"
    recent: "RecentLookup | None"
    intent: IntentModel
    ann: "dict[str, KindIndex]"
    owner_idx: np.ndarray
    kind_code: np.ndarray
    item_ids: np.ndarray

    @staticmethod
    def _lookup(items: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        """``values`` at ``query`` item indices (0 where an item is absent from sorted ``items``)."""
        out = np.zeros(len(query), np.float64)
        if not len(items):
            return out
        pos = np.minimum(np.searchsorted(items, query), len(items) - 1)
        hit = items[pos] == query
        out[hit] = values[pos[hit]]
        return out

    def candidates(self, scored: Scored, n_per_kind: int, kinds: list[str] | None = None,
                   exclude: np.ndarray | None = None) -> np.ndarray:
        """Item indices: the top ``n_per_kind`` of each requested kind by score, consumed (and
        ``exclude``) items left out, without a full sort (:meth:`Catalogue.candidates`)."""
        return self.catalogue.candidates(scored, n_per_kind, kinds, exclude, frozenset(self.ann))

    def describe(self, scored: Scored, cand: np.ndarray, impressions: np.ndarray | None = None,
                 policy: PolicyConfig | None = None, sought: np.ndarray | None = None) -> Candidates:
        """The policy's view of candidates ``cand [N]``: support, self-sought, impressions.
        ``sought``: items the user deliberately engaged with since the version was trained."""
        return self.catalogue.describe(scored, cand, impressions, (policy or PolicyConfig()).sought_mask, sought)

    def intent_for(self, user_id: str, asked: str = "auto", now: float | None = None) -> IntentUse:
        """What ``user_id`` is here for now and how the ranking follows ``asked``
        (:mod:`guanxi.serving.intent_now`; their recent events count when a view is attached).

        Raises:
            ValueError: ``asked`` is not auto, social, economic or any.
        """
        own = self.recent.own(user_id) if self.recent is not None else None
        return self.intent.use(self.user_index(user_id), asked, time.time() if now is None else now, own)

    def recommend(self, user_id: str, k: int, policy: PolicyConfig, kinds: list[str] | None = None,
                  muted_ids: list[str] = (), commercial_opt_out: bool = False,
                  impressions: dict[str, int] | None = None, scored: Scored | None = None,
                  intent: IntentUse | None = None) -> tuple[str | None, list[SlateItem]]:
        """The slate for one request: fallback used and at most ``k`` items, best first.

        Args:
            user_id: external user id (unknown ids are served by the fallback, never an error).
            k: slate size, >= 1.
            policy: the exposure policy.
            kinds: item kinds to draw from (default all; each kind counts once).
            muted_ids: ids the user muted (items or owners).
            commercial_opt_out: leave out every commercial item.
            impressions: item_id -> times shown to the user inside the frequency window.
            scored: the user's scores when already computed (:meth:`score_many`).
            intent: the request's intent (:meth:`intent_for`; None: the model's own ranking).
        """
        fallback, slate, _, _ = self.explain(user_id, k, policy, kinds, muted_ids, commercial_opt_out,
                                             impressions, scored, intent=intent)
        return fallback, slate

    def explain(self, user_id: str, k: int, policy: PolicyConfig, kinds: list[str] | None = None,
                muted_ids: list[str] = (), commercial_opt_out: bool = False,
                impressions: dict[str, int] | None = None, scored: Scored | None = None,
                now: float | None = None, intent: IntentUse | None = None
                ) -> tuple[str | None, list[SlateItem], Candidates, UserState]:
        """:meth:`recommend`, with the candidates and user state the policy chose from (what
        :func:`guanxi.serving.policy.slate_violations` checks a slate against). ``now``: the time
        the recent view's fatigue period is counted from (default the view's clock).

        Intent re-ranks the candidates the model retrieved (the top ``N`` of each kind by its own
        score): ``auto`` adds each its intent's shift; an intent asked for (``social`` or
        ``economic``) places the eligible items of that intent first, best-first, and fills the
        rest of ``k`` with the best others. A slate asked to be economic (``intent`` economic, or
        ``kinds`` only ``merchant``) has no commercial share cap: it returns the eligible
        (trusted-path) economic items up to ``k``; the trust gate holds under every intent."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        kinds = list(dict.fromkeys(kinds)) if kinds else None
        if (intent is not None and intent.used == "economic") or kinds == ["merchant"]:
            policy = policy.replace(max_commercial_share=1.0)
        scored = scored if scored is not None else self.score(user_id)
        muted = self.item_index(list(muted_ids))
        muted = muted[muted >= 0]
        muted_owned = np.flatnonzero(np.isin(self.owner_idx, muted)) if len(muted) else muted
        # The user's impressions as sorted item indices with their counts, looked up once.
        shown_idx, shown_n = np.zeros(0, np.int64), np.zeros(0, np.float64)
        if impressions:
            idx = self.item_index(list(impressions))
            counts = np.fromiter(impressions.values(), np.float64, len(impressions))
            order = np.argsort(idx)
            shown_idx, shown_n = idx[order], counts[order]
        capped = np.zeros(0, np.int64)
        if policy.enabled and policy.frequency_cap > 0:
            capped = shown_idx[(shown_n >= policy.frequency_cap) & (shown_idx >= 0)]
        recent_consumed, sought, hidden, fatigued, removed = self._recent_state(user_id, policy, now)
        exclude = np.concatenate([muted, muted_owned, capped, recent_consumed, hidden, removed])
        state = UserState(consumed=np.concatenate([scored.consumed, recent_consumed]), muted=muted,
                          commercial_opt_out=commercial_opt_out, hidden=hidden, fatigued=fatigued)
        # An intent asked for: its items are drawn down their own ranking (a candidate table holds
        # the best of each kind, not of each intent, so it is not read), and the cut goes deeper
        # until k of them are in the slate or none is left.
        wanted = None
        if intent is not None and intent.used in ("social", "economic"):
            wanted = self.intent.item_economic == (intent.used == "economic")
            if scored.table:
                scored = self.score_many([user_id], table=False)[0]
        n, size = policy.candidates_per_kind(k), -1
        while True:
            if scored.table and not all(row_suffices(row, exclude, scored.c_items, n)
                                        for kind, row in scored.table.items() if kinds is None or kind in kinds):
                scored = self.score_many([user_id], table=False)[0]  # the table row is too short
            cand = self.candidates(scored, n, kinds, exclude=exclude)
            if wanted is not None:
                cand = distinct(np.concatenate([cand, self.catalogue.candidates(
                    scored, n, kinds, exclude, frozenset(self.ann), allowed=wanted)]))
            cand = self._with_recent(scored, cand, kinds)
            shown = self._lookup(shown_idx, shown_n, cand).astype(np.int64)
            cands = self.describe(scored, cand, shown, policy, sought)
            prefer = None if wanted is None else wanted[cands.item_idx]
            if intent is not None and wanted is None and intent.shift != (0.0, 0.0):
                cands = replace(cands, score=cands.score + self.intent.shift(intent, cands.item_idx))
            slate = apply_policy(cands, state, policy, k, scored.fallback, prefer)
            enough = len(slate) >= k and (wanted is None or all(wanted[s.item_idx] for s in slate))
            if enough or len(cand) <= size:     # full, or nothing further down the catalogue
                return scored.fallback, slate, cands, state
            n, size = n * 4, len(cand)

    def _recent_state(self, user_id: str, policy: PolicyConfig, now: float | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """From the recent view: items the user consumed since training (not to serve again), items
        they deliberately engaged with (self-sought), items hidden, accounts fatigued by a hide, and
        the items a ``remove`` fatigue takes out; each ``[n]`` item indices (empty without a view)."""
        empty = np.zeros(0, np.int64)
        if self.recent is None:
            return empty, empty, empty, empty, empty
        own = self.recent.own(user_id)
        sought = own.items[(own.bits & policy.sought_mask) != 0]
        hidden, fatigued = self.recent.hidden(user_id, now)
        removed = empty
        if len(fatigued) and policy.hide_account == "remove":
            removed = np.concatenate([fatigued, np.flatnonzero(np.isin(self.owner_idx, fatigued))])
        return self.recent.consumed(own), sought, hidden, fatigued, removed

    def _with_recent(self, scored: Scored, cand: np.ndarray, kinds: list[str] | None) -> np.ndarray:
        """``cand`` plus the items the contacts engaged with since training, whatever their rank
        (requested kinds only; consumed or excluded ones, masked by :meth:`candidates`, stay out)."""
        extra = scored.recent_items
        if extra is None or not len(extra):
            return cand
        if kinds is not None:
            extra = extra[np.isin(self.kind_code[extra], [self.catalogue.kind_id[k] for k in kinds])]
        extra = extra[np.isfinite(scored.scores[extra])]
        return distinct(np.concatenate([cand, extra])) if len(extra) else cand

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
        scores = scored.scores
        scores[scored.consumed] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])], scored.fallback
