"""Item events of a synthetic world (:mod:`guanxi.features.world`): rounds of interest-driven
events and copies of contacts' earlier engagements, with, in version 2 worlds, each event's true
intent from :mod:`guanxi.features.world_intent`."""
from __future__ import annotations

import numpy as np

from guanxi.features.world_intent import IntentPlan


def make_item_events(config, rng, n, u, v, strength, interests, item_topic, item_pop,
                     item_kind, join_round, activity, plan: IntentPlan | None = None, commercial=None):
    """Rounds of events; each is interest-driven or copied from a contact's earlier event.

    Returns ``(user, item, round, cause, via, day, intent)`` arrays ``[E]``. Without a ``plan``
    (version 1 worlds) kinds follow ``config.kind_mix`` and ``day``/``intent`` are None (the caller
    draws times as version 1 always did). With one (version 2), each event gets its time first,
    then its true intent from the plan; the intent picks the kind of an interest-driven event, and
    a copied item of the other intent is dropped for an interest-driven one with probability
    ``config.intent_copy_fit``."""
    # Symmetric adjacency as CSR with influence weights strength ** sharpness.
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    w = np.concatenate([strength, strength]) ** config.influence_sharpness
    order = np.argsort(src, kind="stable")
    src, dst, w = src[order], dst[order], w[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))])
    cumw = np.cumsum(w)

    buckets = {}  # (topic, kind) -> (item indices, cumulative popularity)
    for t in range(config.topics):
        for k in range(3):
            idx = np.flatnonzero((item_topic == t) & (item_kind == k))
            if len(idx):
                buckets[(t, k)] = (idx, np.cumsum(item_pop[idx]))
    kind_p = np.asarray(config.kind_mix) / np.sum(config.kind_mix)
    cum_interest = np.cumsum(interests, axis=1)

    seen = np.zeros(0, dtype=np.int64)  # user * n_items + item of earlier events
    n_items = len(item_topic)
    hist_user = np.zeros(0, dtype=np.int64)
    hist_item = np.zeros(0, dtype=np.int64)
    out = {"user": [], "item": [], "round": [], "cause": [], "via": [], "day": [], "intent": []}
    round_days = config.days / config.rounds
    if plan is not None:
        mixes = np.asarray([config.social_kind_mix, config.economic_kind_mix], np.float64)
        cum_mix = np.cumsum(mixes / mixes.sum(axis=1, keepdims=True), axis=1)
        item_intent = np.asarray(commercial, bool).astype(np.int8)
    for r in range(config.rounds):
        active = join_round <= r
        per_user = rng.poisson(activity / config.rounds * active)
        eu = np.repeat(np.arange(n), per_user)
        if plan is not None:
            day = (r + rng.random(len(eu))) * round_days
            intent = plan.at(eu, day, rng)
        social = rng.random(len(eu)) < config.social_influence
        item = np.full(len(eu), -1, dtype=np.int64)
        via = np.full(len(eu), -1, dtype=np.int64)

        # Social events: contact drawn by weight, then one of the contact's earlier items.
        if len(hist_user) and social.any():
            su = eu[social]
            lo, hi = indptr[su], indptr[su + 1]
            has = hi > lo
            base = np.where(lo > 0, cumw[np.maximum(lo - 1, 0)], 0.0)
            total = np.where(has, cumw[np.maximum(hi - 1, 0)] - base, 0.0)
            x = base + rng.random(len(su)) * total
            pick = np.minimum(np.searchsorted(cumw, x, side="right"), np.maximum(hi - 1, 0))
            contact = np.where(has, dst[np.minimum(pick, len(dst) - 1)], -1)
            h_order = np.argsort(hist_user, kind="stable")
            h_ptr = np.concatenate([[0], np.cumsum(np.bincount(hist_user, minlength=n))])
            c = np.maximum(contact, 0)
            c_n = h_ptr[c + 1] - h_ptr[c]
            ok = has & (c_n > 0)
            j = h_ptr[c] + (rng.random(len(su)) * np.maximum(c_n, 1)).astype(np.int64)
            copied = hist_item[h_order[np.minimum(j, len(h_order) - 1)]]
            sidx = np.flatnonzero(social)
            item[sidx[ok]] = copied[ok]
            via[sidx[ok]] = contact[ok]
            if plan is not None:        # a copy that does not fit the intent mostly gives way
                misfit = (item >= 0) & (item_intent[np.maximum(item, 0)] != intent)
                drop = misfit & (rng.random(len(item)) < config.intent_copy_fit)
                item[drop], via[drop] = -1, -1
        social = item >= 0

        # Interest events: topic from the user's mix, kind from the mix, item by popularity.
        ii = np.flatnonzero(~social)
        draw = rng.random(len(ii))
        topic = (cum_interest[eu[ii]] < draw[:, None]).sum(axis=1).clip(max=config.topics - 1)
        if plan is None:
            kind = rng.choice(3, len(ii), p=kind_p)
        else:
            kind = (cum_mix[intent[ii]] < rng.random(len(ii))[:, None]).sum(axis=1).clip(max=2)
        for (t, k), (idx, cpop) in buckets.items():
            sel = np.flatnonzero((topic == t) & (kind == k))
            if len(sel):
                x = rng.random(len(sel)) * cpop[-1]
                item[ii[sel]] = idx[np.minimum(np.searchsorted(cpop, x, side="right"), len(idx) - 1)]
        got = item >= 0
        eu, item, via, social = eu[got], item[got], via[got], social[got]
        if plan is not None:
            day, intent = day[got], intent[got]

        # One event per (user, item) in the whole world: a pair is new once.
        key = eu * n_items + item
        _, first = np.unique(key, return_index=True)
        first = np.sort(first)
        fresh = first[~np.isin(key[first], seen)]
        seen = np.concatenate([seen, key[fresh]])
        out["user"].append(eu[fresh])
        out["item"].append(item[fresh])
        out["round"].append(np.full(len(fresh), r))
        out["cause"].append(social[fresh].astype(np.int8))
        out["via"].append(via[fresh])
        if plan is not None:
            out["day"].append(day[fresh])
            out["intent"].append(intent[fresh])
        hist_user = np.concatenate([hist_user, eu[fresh]])
        hist_item = np.concatenate([hist_item, item[fresh]])
    events = tuple(np.concatenate(out[k]) for k in ("user", "item", "round", "cause", "via"))
    if plan is None:
        return (*events, None, None)
    return (*events, np.concatenate(out["day"]), np.concatenate(out["intent"]))
