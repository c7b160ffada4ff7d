"""What the explorer shows (``POST /admin/explain``, the page at ``GET /explore``): a person's
circles, intent and slate, and what the policy held back and why, computed by the request path
itself but without logging an impression or changing anything.

Privacy: only the person's own contacts are named (their circle, tie strength, and which of them
engaged with a slate item); anyone else is only ever counted. A user unknown to the served version,
or forgotten, shows as unknown: no contact, a stranger's slate.

Held back: the best-scored items of the requested kinds (the model's own ranking, the top
``max(candidate_min, candidate_factor x k)`` of each kind) that are not in the slate, each with the
first rule that removed it: ``kind filter``, ``muted``, ``opt-out``, ``hidden`` (see fewer, or its
account fatigued), ``consumed recently``, ``frequency cap``, ``no trusted path``, ``share cap``;
items the policy let through but that ranked below the slate are not held back. ``not classified``
counts the items the user's contacts engaged with since training that the version has never seen
(they are not served until a catalogue update classifies them).
"""
from __future__ import annotations

import numpy as np

from guanxi.serving.policy import PolicyConfig
from guanxi.serving.scores import distinct

HELD_BACK = ("kind filter", "muted", "opt-out", "hidden", "consumed recently", "frequency cap",
             "no trusted path", "share cap", "not classified")
SHOWN_HELD = 10            # held-back items listed per reason, the best-scored first (all are counted)


def explain_request(api, user_id: str, k: int = 20, kinds: list[str] | None = None, intent: str = "auto",
                    now: float | None = None) -> dict:
    """The explorer's view of one request (module doc); ``api`` is the service's
    :class:`guanxi.serving.api.RecommendationAPI`. Reads only."""
    import time

    now = time.time() if now is None else now
    served = api.holder.current
    rec = served.recommender
    api._apply_forgotten()
    forgotten = rec.is_forgotten(user_id)
    settings, shown = api.user_state(user_id, now, forgotten)
    policy: PolicyConfig = api.policy
    use = rec.intent_for(user_id, intent, now)
    u = -1 if forgotten else rec.user_index(user_id)
    fallback, slate, _, state = rec.explain(user_id, k, policy, kinds, muted_ids=list(settings.mute),
                                            commercial_opt_out=settings.commercial_opt_out, impressions=shown,
                                            intent=use, now=now)
    contacts, strength, inner = (rec.contacts.of(u)[0], rec.contacts.of(u)[2], rec.contacts.of(u)[3]) if u >= 0 \
        else (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
    contact_ids = [str(c) for c in rec.idmap.user_ids[contacts].tolist()]
    engaged = _engaged_by(rec, contacts, [s.item_idx for s in slate])
    meta = rec.bundle.meta
    return {
        "user_id": user_id, "known": u >= 0, "model_version": served.version,
        "trained_at": meta.get("written_at"), "fallback": fallback,
        "circles": {
            "inner": [{"user_id": c, "strength": round(float(s), 4)}
                      for c, s, i in zip(contact_ids, strength.tolist(), inner.tolist()) if i],
            "outer": [{"user_id": c, "strength": round(float(s), 4)}
                      for c, s, i in zip(contact_ids, strength.tolist(), inner.tolist()) if not i],
            "counts": {"inner": int(inner.sum()), "outer": int((~inner).sum())}},
        "intent": use.block(rec.intent.filled(use, [s.item_idx for s in slate])),
        "settings": settings.to_json(),
        "slate": [{"rank": n + 1, "item_id": str(rec.item_ids[s.item_idx]), "kind": str(rec.kinds[s.item_idx]),
                   "score": round(s.score, 6), "commercial": s.commercial,
                   "intent": "economic" if rec.commercial[s.item_idx] else "social",
                   "reason": {"type": s.reason, "contacts_engaged": s.contacts_engaged},
                   "contacts": [contact_ids[j] for j in engaged[n]]} for n, s in enumerate(slate)],
        "held_back": _held_back(rec, policy, user_id, k, kinds, slate, state, shown, settings.commercial_opt_out,
                                contact_ids, now),
    }


def _engaged_by(rec, contacts: np.ndarray, items: list[int]) -> list[list[int]]:
    """For each of ``items``, the positions in ``contacts`` of those who engaged with it (in the
    version's history or, with a recent view, since)."""
    h = rec.bundle.history
    want = {i: n for n, i in enumerate(items)}
    out: list[list[int]] = [[] for _ in items]
    recent = rec.recent.contact_pairs(contacts) if rec.recent is not None else None
    pairs = [(j, int(i)) for j, c in enumerate(contacts.tolist()) for i in h.indices[h.indptr[c]:h.indptr[c + 1]]]
    if recent is not None:
        pairs += list(zip(recent[0].tolist(), recent[1].tolist()))
    for j, i in set(pairs):
        if i in want:
            out[want[i]].append(j)
    return [sorted(x) for x in out]


def _held_back(rec, policy: PolicyConfig, user_id: str, k: int, kinds: list[str] | None, slate, state,
               shown: dict[str, int], opt_out: bool, contact_ids: list[str], now: float) -> dict:
    """The best-scored items removed by the policy, each with its reason, and the count of each."""
    scored = rec.score_many([user_id], table=False)[0]          # every item's score
    pool = rec.catalogue.candidates(scored, policy.candidates_per_kind(k), None, None, frozenset(rec.ann))
    recent_consumed, sought, hidden, _, removed = rec._recent_state(user_id, policy, now)
    # what the user's own state excludes is listed whatever its rank (the slate may have gone deeper
    # than the first cut to fill k); items consumed in training are not held back, only known
    muted_owned = np.flatnonzero(np.isin(rec.owner_idx, state.muted)) if len(state.muted) else state.muted
    capped = [i for i in rec.item_index([i for i, n in shown.items() if n >= policy.frequency_cap]) if i >= 0] \
        if policy.enabled and policy.frequency_cap > 0 else []
    extra = np.concatenate([state.muted, muted_owned, hidden, removed, recent_consumed,
                            np.asarray(capped, np.int64)]).astype(np.int64)
    if scored.scored_items is not None:         # retrieval scored only some items of its kinds
        ann_kinds = [rec.catalogue.kind_id[kind] for kind in rec.ann]
        extra = extra[np.isin(extra, scored.scored_items) | ~np.isin(rec.kind_code[extra], ann_kinds)]
    pool = distinct(np.concatenate([pool, extra]).astype(np.int64))
    pool = pool[np.isfinite(scored.scores[pool]) & ~np.isin(pool, scored.consumed)]
    in_slate = {s.item_idx for s in slate}
    pool = pool[~np.isin(pool, list(in_slate))] if in_slate else pool
    cands = rec.describe(scored, pool, None, policy, sought)
    owner = rec.owner_idx[pool]
    times = np.array([shown.get(str(rec.item_ids[i]), 0) for i in pool])
    gated = (cands.inner_support >= policy.commercial_min_inner_support) | (policy.allow_self_sought & cands.self_sought)
    tired = np.isin(pool, hidden) | np.isin(pool, removed) | np.isin(owner, removed)
    rules = [
        ("kind filter", np.zeros(len(pool), bool) if kinds is None else ~np.isin(rec.kinds[pool], kinds)),
        ("muted", np.isin(pool, state.muted) | np.isin(owner, state.muted)),
        ("opt-out", rec.commercial[pool] & opt_out),
        ("hidden", tired),
        ("consumed recently", np.isin(pool, recent_consumed)),
        ("frequency cap", (times >= policy.frequency_cap) & bool(policy.enabled and policy.frequency_cap)),
        ("no trusted path", rec.commercial[pool] & ~gated & policy.enabled),
        ("share cap", rec.commercial[pool] & policy.enabled),
    ]
    reason = np.full(len(pool), -1)
    for n, (_, mask) in enumerate(rules):
        reason[(reason < 0) & mask] = n
    # a commercial item eligible by every other rule is held back by the share cap only if the slate's
    # commercial quota is full and it would have ranked in; otherwise it simply ranked lower
    floor = min((s.score for s in slate), default=-np.inf)
    share = reason == len(rules) - 1
    quota_full = sum(s.commercial for s in slate) >= max(1, int(policy.max_commercial_share * max(len(slate), 1)))
    reason[share & ~((cands.score > floor) & quota_full)] = -1
    held = np.flatnonzero(reason >= 0)
    held = held[np.argsort(-cands.score[held], kind="stable")]
    held = np.concatenate([held[reason[held] == n][:SHOWN_HELD] for n in range(len(rules))])
    held = held[np.argsort(-cands.score[held], kind="stable")]
    counts = {name: int((reason == n).sum()) for n, (name, _) in enumerate(rules)}
    counts["not classified"] = _unclassified(rec, contact_ids)
    return {"counts": counts,
            "items": [{"item_id": str(rec.item_ids[pool[j]]), "kind": str(rec.kinds[pool[j]]),
                       "score": round(float(cands.score[j]), 6), "commercial": bool(rec.commercial[pool[j]]),
                       "reason": rules[reason[j]][0]} for j in held]}


def _unclassified(rec, contact_ids: list[str]) -> int:
    """Items the user's contacts engaged with since training that the version has never seen."""
    if rec.recent is None:
        return 0
    seen = {e[1] for c in contact_ids for e in rec.recent.view.own(c)}
    return sum(1 for i in seen if i not in rec._item_pos)

