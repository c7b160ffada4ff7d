"""Pure scoring over a recommendation bundle (no BentoML import): a request in, a slate out.

A known user is scored by their embedding against every item (plus the model's social-support term
when it has one); a user unknown to the model falls back to what their contacts engaged with
(``circle``) or to popular items (``popular``). Candidates are the top ``N`` per item kind, taken
with ``argpartition`` (no full sort); items already consumed, muted or at their frequency cap are
left out before the cut; the exposure policy (:mod:`guanxi.serving.policy`) then picks the slate and
explains it. When the policy leaves the slate short while the catalogue holds more, the cut goes
deeper (``N`` x 4 at a time), so a user who has seen the top of the catalogue moves down it
instead of getting an empty feed.

A forgotten user (:meth:`Recommender.forget`) is scored as a stranger, and drops out of every other
user's contacts: their support, counts and reasons.

With a recent view attached (:meth:`Recommender.attach_recent`, :mod:`guanxi.serving.recent`), what
happened since the version was trained counts too: the contacts' recent engagements join their
histories for the support term, the trust gate, the counts and the candidates; the user's own leave
their items out (kinds not re-consumable) and make items self-sought; hidden items go, and their
accounts are demoted or removed for the fatigue period.
"""
from __future__ import annotations

import logging
import time
from itertools import repeat
from pathlib import Path

import numpy as np

from guanxi.features.circles import circle_share
from guanxi.serving.candidate_table import load_or_build
from guanxi.serving.contact_facts import ContactFacts
from guanxi.serving.contact_facts import load_or_build as load_facts
from guanxi.serving.catalogue import Catalogue
from guanxi.serving.contacts import Contacts, aggregates, support_sum
from guanxi.serving.forget_list import ForgetList
from guanxi.serving.intent_now import IntentModel
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recent import RecentView
from guanxi.serving.recent_facts import RecentLookup
from guanxi.serving.retrieval import KindIndex, RetrievalConfig
from guanxi.serving.scores import Scored, distinct
from guanxi.serving.slate import SlateMaker
from guanxi.bundle import Bundle

logger = logging.getLogger(__name__)


class Recommender(SlateMaker):
    """Holds a bundle's arrays in memory and answers recommendation requests.

    Args:
        bundle: a loaded :class:`guanxi.bundle.Bundle`.
    """

    def __init__(self, bundle: Bundle, ann: RetrievalConfig | None = None, index_dir: Path | None = None) -> None:
        if bundle.meta.get("servable") is False:
            raise ValueError(f"a {bundle.meta.get('model')} bundle records no embeddings to serve "
                             "(an item-item comparison baseline)")
        self.bundle = bundle
        self.idmap = bundle.idmap
        # Plain ndarray views of the (possibly memory-mapped) embeddings: indexing a memmap builds
        # a memmap object per result, which costs more than the few hundred rows a request reads.
        self._item_emb = None if bundle.item_emb is None else np.asarray(bundle.item_emb)
        self._user_emb = None if bundle.user_emb is None else np.asarray(bundle.user_emb)
        self._user_pos = {u: i for i, u in enumerate(self.idmap.user_ids.astype(str))}
        self._item_pos = {v: i for i, v in enumerate(self.idmap.item_ids.astype(str))}
        self.catalogue = cat = Catalogue(bundle.items, self.idmap)
        self.item_ids, self.kinds, self.commercial, self.owner_idx = cat.item_ids, cat.kinds, cat.commercial, cat.owner_idx
        self.kind_items, self.kind_code, self.kind_span = cat.kind_items, cat.kind_code, cat.kind_span
        self._types = bundle.history_types
        if self._types is None:
            logger.warning("this bundle records no event types: nothing counts as self-sought")
        self.ann_candidates = 500
        self.ann: dict[str, KindIndex] = {}
        if ann is not None and ann.min_items > 0 and bundle.item_emb is not None:
            for kind, pool in self.kind_items.items():
                if len(pool) >= ann.min_items:
                    cache = index_dir / f"ann-{kind}.faiss" if index_dir is not None else None
                    self.ann[kind] = KindIndex(bundle.item_emb[pool], ann, cache)
                    logger.info("ANN index for %d %s items (nprobe %d)", len(pool), kind, ann.nprobe)
        self.tables: dict[str, np.ndarray] = {}          # kind -> [U, depth] item indices
        self.table_scores: dict[str, np.ndarray] = {}    # kind -> [U, depth] their model scores
        if ann is not None and ann.table_max_scores > 0 and bundle.user_emb is not None:
            self._build_tables(ann, index_dir)
        # Whether scoring concurrent requests together saves work: an ANN search, or a large kind
        # (by the table's own size rule) scored in full: one read of its matrix per batch.
        large = (ann or RetrievalConfig()).table_min_items
        self.batching_pays = bool(self.ann) or any(len(p) >= large and k not in self.tables
                                                   for k, p in self.kind_items.items())
        config = bundle.meta.get("config", {})
        self.support_weight = float(bundle.meta.get("support_weight", 0.0))
        # "listed": the support term counts every listed contact once, not by circle weight.
        self.support_listed = bundle.meta.get("support_ties", "circles") == "listed"
        self.contacts = Contacts(bundle.circles, self.idmap, bundle.history, float(config.get("inner_weight", 1.0)),
                                 float(config.get("outer_weight", 0.3)), bool(config.get("use_circles", True)))
        self._all_contacts = self.contacts
        self.forget_list: ForgetList | None = None
        self._blocked: np.ndarray | None = None        # [U] bool: forgotten users
        self._near_blocked: np.ndarray | None = None   # [U] bool: users with a forgotten contact
        self.facts: ContactFacts | None = None
        self.recent: RecentLookup | None = None
        self.intent = IntentModel(bundle, self.commercial, self.kind_code)
        if self.tables:
            self._build_facts(index_dir)

    def attach_recent(self, view: RecentView | None, policy: PolicyConfig) -> None:
        """Read ``view`` from now on (None: stop), with the policy's re-consumable kinds."""
        if view is None:
            self.recent = None
            return
        reconsumable = tuple(self.catalogue.kind_id[k] for k in policy.reconsumable_kind_names)
        self.recent = RecentLookup(view, self._item_pos, np.asarray(self.idmap.user_ids.astype(str), dtype=object),
                                   self.owner_idx, self.kind_code, reconsumable)

    def _recent_pairs(self, u: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The recent engagements of user ``u``'s contacts with known items, or None."""
        if self.recent is None or u < 0:
            return None
        return self.recent.contact_pairs(self.contacts.of(u)[0])

    def _build_tables(self, config: RetrievalConfig, index_dir: Path | None) -> None:
        """The candidate table (:mod:`guanxi.serving.candidate_table`) of each large kind without an index."""
        b = self.bundle
        for kind, pool in self.kind_items.items():
            if kind in self.ann or len(pool) < max(config.table_min_items, config.table_depth + 1):
                continue
            if b.user_emb.shape[0] * len(pool) > config.table_max_scores:
                logger.info("no candidate table for %s: %d users x %d items is above %d", kind,
                            b.user_emb.shape[0], len(pool), config.table_max_scores)
                continue
            start = time.perf_counter()
            cache = index_dir / f"table-{kind}-{config.table_depth}.npy" if index_dir is not None else None
            self.tables[kind], self.table_scores[kind] = load_or_build(cache, b.user_emb, b.item_emb, pool,
                                                                       b.history, config.table_depth)
            logger.info("candidate table for %d users x %d %s items (depth %d) in %.1f s", b.user_emb.shape[0],
                        len(pool), kind, config.table_depth, time.perf_counter() - start)

    def _build_facts(self, index_dir: Path | None) -> None:
        """The contact facts (:mod:`guanxi.serving.contact_facts`) of every known user with contacts,
        computed by the code a request runs (:meth:`_finish`, :func:`guanxi.serving.contacts.aggregates`)."""
        start, b = time.perf_counter(), self.bundle
        users = np.flatnonzero((np.diff(b.history.indptr) > 0) & (np.diff(self.contacts.indptr) > 0))
        scratch = np.empty(self.idmap.num_items, np.float32)

        def per_user(u: int) -> tuple[np.ndarray, ...] | None:
            scored = self._finish(u, scratch, True, self._user_emb[u], extra=None)   # the version's own facts
            return (scored.c_items, scratch[scored.c_items], *aggregates(scored)) if len(scored.c_items) else None

        cache = index_dir / "contact-facts.npy" if index_dir is not None else None
        self.facts = load_facts(cache, self.idmap.num_users, per_user, users)
        logger.info("contact facts for %d users (%d entries) in %.1f s", len(users), len(self.facts.items),
                    time.perf_counter() - start)

    def forget(self, forget_list: ForgetList) -> None:
        """Serve the users on ``forget_list`` as strangers and drop them from everyone's contacts
        (their engagement no longer counts in anyone's support, counts or reasons)."""
        blocked = forget_list.mask(self.idmap.user_ids.astype(str)) if len(forget_list) else None
        if blocked is None or not blocked.any():
            self.contacts, self._near_blocked, self._blocked = self._all_contacts, None, None
        else:
            self.contacts, self._near_blocked = self._all_contacts.without(blocked)
            self._blocked = blocked
        self.forget_list = forget_list
        logger.info("forgetting %d of this model's users", 0 if blocked is None else int(blocked.sum()))

    def is_forgotten(self, user_id: str) -> bool:
        """Whether ``user_id`` is on the forget list handed to :meth:`forget`."""
        return self.forget_list is not None and self.forget_list.contains(user_id)

    def user_index(self, user_id: str) -> int:
        """user_idx of ``user_id``, -1 when the model does not know the user (or forgot them)."""
        u = self._user_pos.get(str(user_id), -1)
        blocked = self._blocked
        return -1 if blocked is not None and u >= 0 and blocked[u] else u

    def item_index(self, item_ids: list[str]) -> np.ndarray:
        """``[n]`` item_idx per id, -1 for ids the model does not know."""
        return np.fromiter(map(self._item_pos.get, map(str, item_ids), repeat(-1)), np.int64, len(item_ids))

    def score(self, user_id: str) -> Scored:
        """Score every item for ``user_id`` (see module doc; the candidate table is not used)."""
        return self.score_many([user_id], table=False)[0]

    def score_many(self, user_ids: list[str], table: bool = True) -> list[Scored]:
        """:meth:`score` for several users at once: the known ones share one matrix product, so
        the item matrix is read from memory once per batch instead of once per user.
        Large kinds go through the ANN index when there is one, and through the candidate table
        when there is one and ``table`` is true; other kinds are scored in full."""
        b = self.bundle
        rows = [self.user_index(u) for u in user_ids]
        known = [u >= 0 and b.user_emb is not None and b.history.indptr[u + 1] > b.history.indptr[u]
                 for u in rows]
        sel = [u for u, k in zip(rows, known) if k]
        if (self.ann or (self.tables and table)) and sel:
            return self._score_retrieved(rows, known, sel, table)
        if len(sel) == 1:
            block = (self._item_emb @ self._user_emb[sel[0]])[None, :]
        elif sel:
            block = self._user_emb[sel] @ self._item_emb.T            # [n_known, I], rows contiguous
        out, j = [], 0
        for u, is_known in zip(rows, known):
            if is_known:
                scores = block[j]                                     # fresh: ours to change
                j += 1
            else:
                scores = b.popularity.astype(np.float32, copy=True)
            out.append(self._finish(u, scores, is_known))
        return out

    def _score_retrieved(self, rows: list[int], known: list[bool], sel: list[int], use_table: bool) -> list[Scored]:
        """Large kinds through their ANN index or candidate table, small kinds exactly. Every
        retrieved item, and every item a contact engaged with, is scored exactly; the other items
        of an ANN kind are -inf, those of a table kind unset (never read: ``Scored.scored_items``)."""
        b = self.bundle
        emb = self._item_emb
        vecs = self._user_emb[sel]                                      # [n, d]
        found = {kind: self.kind_items[kind][np.maximum(idx.search(vecs, self.ann_candidates), 0)]
                 for kind, idx in self.ann.items()}
        out, j = [], 0
        for u, is_known in zip(rows, known):
            if not is_known:
                out.append(self._finish(u, b.popularity.astype(np.float32, copy=True), False))
                continue
            uvec = vecs[j]
            table = {kind: t[u] for kind, t in self.tables.items() if use_table and t[u, 0] >= 0}
            # An ANN kind's unretrieved items stay -inf (``score()`` is public); a table row's other
            # items are never read (``Scored.scored_items``), so a table alone needs no [I] fill.
            scores = (np.full(self.idmap.num_items, -np.inf, np.float32) if self.ann
                      else np.empty(self.idmap.num_items, np.float32))
            for kind, pool in self.kind_items.items():
                if kind in table:
                    scores[table[kind]] = self.table_scores[kind][u]
                elif kind in self.ann:
                    got = found[kind][j]
                    scores[got] = emb[got] @ uvec
                elif len(pool):
                    span = self.kind_span.get(kind)
                    if span is not None:
                        scores[span[0]:span[1]] = emb[span[0]:span[1]] @ uvec
                    else:
                        scores[pool] = emb[pool] @ uvec
            parts = [found[kind][j] for kind in self.ann] + list(table.values())
            j += 1
            near = self._near_blocked
            extra = self._recent_pairs(u)           # contacts active since training: facts are stale
            if use_table and self.facts is not None and (near is None or not near[u]) and extra is None:
                out.append(self._with_facts(u, scores, parts, table or None))
                continue
            retrieved = np.concatenate(parts) if parts else None      # None: all exact; made distinct in _finish
            out.append(self._finish(u, scores, True, uvec, retrieved, table or None, extra))
        return out

    def _with_facts(self, u: int, scores: np.ndarray, parts: list[np.ndarray],
                    table: dict[str, np.ndarray] | None) -> Scored:
        """:meth:`_finish` for a known user from their precomputed contact facts (same numbers)."""
        items, item_scores, facts = self.facts.row(u)
        scores[items] = item_scores
        retrieved = None
        if parts:
            # The retrieved items and the contacts' items, each once (a mark instead of a sort).
            row = np.concatenate(parts)
            row = distinct(row) if self.ann else row      # an ANN search may repeat an item
            seen = np.zeros(len(scores), bool)
            seen[row] = True
            retrieved = np.concatenate([row, items[~seen[items]]])
        consumed, types = self._consumed(u)
        none = np.zeros(0, np.int64)
        return Scored(scores, None, consumed, *self.contacts.of(u), items, none, none,
                      scored_items=retrieved, table=table, facts=facts, consumed_types=types)

    def _consumed(self, u: int) -> tuple[np.ndarray, np.ndarray | None]:
        """User ``u``'s consumed items ``[n]`` and their event-type masks ``[n]`` (None without)."""
        h = self.bundle.history
        lo, hi = h.indptr[u], h.indptr[u + 1]
        return h.indices[lo:hi], None if self._types is None else self._types[lo:hi]

    def _finish(self, u: int, scores: np.ndarray, known: bool, uvec: np.ndarray | None = None,
                retrieved: np.ndarray | None = None, table: dict[str, np.ndarray] | None = None,
                extra: tuple[np.ndarray, np.ndarray] | None | bool = False) -> Scored:
        """Add the social side to a user's raw scores (support term, or the circle fallback).
        ``uvec``/``retrieved`` (ANN retrieval): score the contacts' items exactly too, retrieved or
        not; the items of ANN kinds with a score are ``retrieved`` plus those. ``extra``: the
        contacts' recent engagements (:meth:`_recent_pairs`; False: read them here)."""
        if u >= 0:
            contacts, weight, strength, inner = self.contacts.of(u)
            consumed, types = self._consumed(u)
        else:
            contacts = np.zeros(0, np.int64)
            weight = strength = np.zeros(0, np.float32)
            inner = np.zeros(0, bool)
            consumed, types = np.zeros(0, np.int64), None
        if extra is False:
            extra = self._recent_pairs(u)
        entries = self.contacts.entries(contacts, extra)
        recent = distinct(extra[1]) if extra is not None else None
        if retrieved is not None:
            retrieved = distinct(np.concatenate([retrieved, entries[0]]))
        scored = Scored(scores, None if known else "popular", consumed, contacts, weight, strength, inner,
                        *entries, scored_items=retrieved, table=table, consumed_types=types, recent_items=recent)
        if not len(entries[0]):
            return scored
        if uvec is not None:
            scores[entries[0]] = self._item_emb[entries[0]] @ uvec
        if known:
            if self.support_weight:
                per_contact = np.ones(len(weight)) if self.support_listed else weight.astype(np.float64)
                scores[entries[0]] += np.float32(self.support_weight) * np.log1p(
                    support_sum(scored, per_contact)).astype(np.float32)
            return scored
        support = support_sum(scored, weight.astype(np.float64))
        if support.max() > 0:        # the cold-start blend: popularity + circle_share
            scores[entries[0]] += circle_share(support).astype(np.float32)
            return Scored(scores, "circle", consumed, contacts, weight, strength, inner, *entries,
                          consumed_types=types, recent_items=recent)
        return scored

    def social_support(self, user_id: str) -> np.ndarray:
        """``[I]`` ``sum_v w_uv [v engaged with i]`` over the user's contacts ``v`` (the model's
        social weights ``w_uv`` = circle weight x tie strength)."""
        scored = self.score(user_id)
        out = np.zeros(self.idmap.num_items, np.float32)
        if len(scored.c_items):
            out[scored.c_items] = support_sum(scored, scored.weight.astype(np.float64))
        return out
