"""How the intent fit does against a version 2 world's truth (docs/model.md, "Intent").

Two protocols, both on the test split and its held-out interactions grouped by their true intent:

- **at the start** of the test period, every user ranked once (:func:`conditioned`), ``auto``
  reading ``p`` from everything known before the period;
- **per event**, as served (:mod:`guanxi.training.intent_events`): every held-out interaction
  ranked at its own moment, ``auto`` reading ``p`` from everything before it.

Rankings (the same scores and shift, only ``p`` differs):

- ``any``: no shift.
- ``auto``: the fitted filter's ``p``.
- ``truth``: what the world knows. At the start, 1 for a user in an economic episode then and 0 in
  a social one. Per event, the episode the interaction belongs to. With episodes off, each user's
  true propensity.
- ``oracle``: the filter run with the world's own parameters instead of fitted ones:
  - renewal at ``1 / episode_days``;
  - the true propensities;
  - ``theta0``/``theta1`` measured on train + valid against the truth.

  It reads the same behaviour as ``auto``, so it bounds what a better fit of the filter could
  recover (episodes on only).

``auto`` against ``truth`` thus measures the inference alone.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from guanxi.features.coded import CodedEvents
from guanxi.features.intent import IntentTable, counts_toward_mix, item_intent
from guanxi.features.intent_filter import IntentFilter
from guanxi.features.intent_profile import auc, usual_shift
from guanxi.training.evaluate import ScoreFn
from guanxi.training.intent_events import before_each, event_metrics, event_task
from guanxi.training.intent_fit import IntentFit, conditioned, event_intents

MODES = ("any", "auto", "truth", "oracle")


def truth_report(fit: IntentFit, score: ScoreFn, fallback: ScoreFn, prep, truth, table: IntentTable) -> dict:
    """The fit against ``truth`` (a :class:`guanxi.features.world_intent.IntentTruth`), both
    protocols (module doc): the AUC of the inferred economic probability for the true episode, and
    recall@20 / ndcg@20 by true intent for ``any``, ``auto``, ``truth`` and (episodes on)
    ``oracle``, with each mode's gain over ``any`` and the share of ``truth``'s gain it recovers.
    The start-of-period numbers sit at the top level; the per-event ones under ``per_event``."""
    task, data, n = prep.test_task, prep.data, prep.idmap.num_users
    at = float(np.nanmin(data.test.ts)) if np.isfinite(data.test.ts).any() else fit.reference_ts
    true_prop = _true_propensity(prep, truth, fit.propensity)
    oracle = _oracle(prep, truth, table, true_prop)
    econ_items = item_intent(data.commercial.astype(bool)).astype(bool)

    # At the start of the period: one ranking per user.
    pair_intent, known = _true_intent(prep, truth.events, task.test_user, task.test_item)
    sub = replace(task, test_user=task.test_user[known], test_item=task.test_item[known], unranked=None)
    p, p_truth = fit.current(at), true_prop.copy()
    out: dict = {"at": at, "pairs": int(known.sum()), "true_economic_share": float(pair_intent[known].mean())}
    p_oracle = None
    state = truth.state_at(at)
    if state is not None:
        users = prep.idmap.user_index(state["user_id"].to_numpy())
        ok = users >= 0
        is_econ, has = np.zeros(n, np.int8), np.zeros(n, bool)
        is_econ[users[ok]], has[users[ok]] = state["intent"].to_numpy()[ok], True
        p_truth = np.where(has, is_econ, p)
        tested = np.unique(sub.test_user)
        tested = tested[has[tested]]
        out["auc"] = auc(p[tested], is_econ[tested])
        out["users_economic_now"] = float(is_econ[tested].mean()) if len(tested) else float("nan")
        if oracle is not None:
            flt, o_state, o_last = oracle
            p_oracle = flt.carry(o_state, o_last, true_prop, at)
            out["oracle_auc"] = auc(p_oracle[tested], is_econ[tested])
    else:
        out["auc"] = float("nan")                     # no episode to infer
    shifts = {"any": (np.zeros(n), np.zeros(n)), "auto": fit.shifts(p), "truth": fit.shifts(p_truth)}
    if p_oracle is not None:
        shifts["oracle"] = usual_shift(p_oracle, true_prop, fit.beta)
    out.update(conditioned(score, fallback, sub, pair_intent[known], shifts, econ_items))
    out["gain"] = _gains(out)

    # Per event, as served.
    test = data.test.take(counts_toward_mix(data.test.type))
    kind, commercial = data.item_kind.astype(np.int64), data.commercial.astype(bool)
    etask = event_task(test, event_intents(test, table, kind, commercial), task.exclude, task.train_count)
    true_i, known_e = _true_intent(prep, truth.events, etask.user, etask.item)
    groups = np.where(known_e, true_i, -1).astype(np.int8)
    u = etask.user
    p_e = before_each(fit.filter, fit.state, fit.last_ts, fit.propensity, etask)
    per: dict = {"events": int(known_e.sum()), "true_economic_share": float(true_i[known_e].mean())}
    shifts = {"any": (np.zeros(len(u)), np.zeros(len(u))),
              "auto": usual_shift(p_e, fit.propensity[u], fit.beta)}
    if state is not None:
        per["auc"] = auc(p_e[known_e], true_i[known_e])
        shifts["truth"] = usual_shift(true_i.astype(np.float64), fit.propensity[u], fit.beta)
        if oracle is not None:
            flt, o_state, o_last = oracle
            p_o = before_each(flt, o_state, o_last, true_prop, etask)
            per["oracle_auc"] = auc(p_o[known_e], true_i[known_e])
            shifts["oracle"] = usual_shift(p_o, true_prop[u], fit.beta)
    else:
        per["auc"] = float("nan")
        shifts["truth"] = usual_shift(true_prop[u], fit.propensity[u], fit.beta)
    per.update(event_metrics(score, fallback, etask, shifts, econ_items, groups))
    per["gain"] = _gains(per)
    out["per_event"] = per
    return out


def _gains(block: dict) -> dict:
    """Per group: each mode's gain in recall@20 over ``any`` and the share of ``truth``'s it recovers."""
    gains = {}
    for c in ("overall", "economic", "social"):
        if c not in block["any"]:
            continue
        r = {m: block[m][c]["recall_at_20"] for m in MODES if m in block}
        gain, g = r["truth"] - r["any"], {}
        for m in ("truth", "auto", "oracle"):
            if m in r:
                g[f"{m}_over_any"] = (r[m] - r["any"]) / r["any"] if r["any"] else float("nan")
                if m != "truth":
                    g[f"{m}_recovers"] = (r[m] - r["any"]) / gain if gain > 0 else float("nan")
        gains[c] = g
    return gains


def _true_propensity(prep, truth, default: np.ndarray) -> np.ndarray:
    """``[U]`` each user's true economic propensity (``default`` where the truth has none)."""
    out = np.asarray(default, np.float64).copy()
    users = prep.idmap.user_index(truth.propensity["user_id"].to_numpy())
    ok = users >= 0
    out[users[ok]] = truth.propensity["econ_propensity"].to_numpy()[ok]
    return out


def _oracle(prep, truth, table: IntentTable, true_prop: np.ndarray
            ) -> tuple[IntentFilter, np.ndarray, np.ndarray] | None:
    """The filter with the world's parameters (module doc) and each user's state after train +
    valid, or None with episodes off."""
    if truth.episodes is None or not truth.episode_days:
        return None
    data = prep.data
    kind, commercial = data.item_kind.astype(np.int64), data.commercial.astype(bool)
    known = CodedEvents.concat([data.train.take(counts_toward_mix(data.train.type)),
                                data.valid.take(counts_toward_mix(data.valid.type))])
    observed = event_intents(known, table, kind, commercial)
    true_i, ok = _true_intent(prep, truth.events, known.user, known.item)
    theta0, theta1 = observed[ok & (true_i == 0)].mean(), observed[ok & (true_i == 1)].mean()
    flt = IntentFilter(float(theta0), float(theta1), 1.0 / truth.episode_days)
    state, last_ts = true_prop.copy(), np.full(len(true_prop), np.nan)
    flt.run(known.user, observed, known.ts, state, last_ts, true_prop)
    return flt, state, last_ts


def _true_intent(prep, events, user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``([P] true intent, [P] known)`` of user–item pairs (``[P]`` indices each), from the truth's
    ``events`` (``user_id, item_id, intent``; a pair's first event where it has several)."""
    n_items = prep.idmap.num_items
    u = prep.idmap.user_index(events["user_id"].to_numpy())
    i = prep.idmap.item_index(events["item_id"].to_numpy())
    ok = (u >= 0) & (i >= 0)
    keys = u[ok].astype(np.int64) * n_items + i[ok]
    order = np.argsort(keys, kind="stable")
    keys, intents = keys[order], events["intent"].to_numpy()[ok][order]
    pairs = np.asarray(user, np.int64) * n_items + item
    if not len(keys):
        return np.zeros(len(pairs), np.int8), np.zeros(len(pairs), bool)
    at = np.minimum(np.searchsorted(keys, pairs), len(keys) - 1)
    known = keys[at] == pairs
    return np.where(known, intents[at], 0).astype(np.int8), known
