"""Intent after training: each user's profile, the current-intent estimator and the ranking's intent
weight, all chosen on validation; and, where a world knows every event's true intent, how well
the inference and the conditioned ranking do against it (docs/model.md, "Intent").

The ranking conditioned on intent adds ``beta * log(q_c / pi_c)`` to the score of every item of
intent ``c`` (:func:`guanxi.features.intent_profile.ranking_shift`): nothing when the person's
intent now (``q``) is their long-term mix (``pi``), a lift for the intent they lean to now. ``any``
is the model's own ranking (no shift); ``auto`` uses ``q`` inferred from the latest events with
``beta_auto``; asking for ``social`` or ``economic`` (or, offline, the true intent) sets ``q`` to
``1 - EPS`` for that intent, with ``beta_ask``. All is chosen on validation: the estimator's
``half_life`` and ``alpha`` minimise the log-loss of the validation events' intents (observed
through the intent table); ``beta_ask`` maximises recall@20 of each validation pair ranked with its
own observed intent asked for, ``beta_auto`` the recall@20 of ``auto`` (0 is on both grids: no
gain, no lift). Data whose events all carry one intent (most public sets) get no fit and make no
intent claim.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from guanxi.features.coded import CodedEvents
from guanxi.features.intent import IntentTable, counts_toward_mix, item_intent
from guanxi.features.intent_profile import (SOURCES, auc, current_intent, decayed_sums, log_loss,
                                            long_term_mix, ranking_shift)
from guanxi.training.evaluate import RankingTask, ScoreFn, evaluate_ranking

logger = logging.getLogger(__name__)

HALF_LIVES_H = (12.0, 48.0, 168.0, 504.0)
ALPHAS = (1.0, 3.0, 10.0)
BETAS = (0.0, 0.25, 0.5, 1.0, 2.0)
EPS = 0.05          # an asked-for intent is 95 % sure, never certain


@dataclass(frozen=True)
class IntentFit:
    """The fitted intent model of one version (module doc). ``mix``, ``source``, ``economic`` and
    ``total`` are ``[U]``: long-term mixes from train + valid, and the decayed sums at ``reference_ts``."""

    claims: bool
    reason: str
    half_life_hours: float = 168.0
    alpha: float = 3.0
    beta_auto: float = 0.0
    beta_ask: float = 0.0
    reference_ts: float = 0.0
    population: float = 0.0
    mix: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    economic: np.ndarray = field(default_factory=lambda: np.zeros(0))
    total: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grid: tuple = ()

    def record(self) -> dict:
        """The fit as the metrics JSON's ``intent`` entry (without the per-user arrays)."""
        return {"claims": self.claims, "reason": self.reason, "half_life_hours": self.half_life_hours,
                "alpha": self.alpha, "beta_auto": self.beta_auto, "beta_ask": self.beta_ask, "eps": EPS,
                "population": self.population,
                "grid": list(self.grid),
                "sources": {s: int((self.source == k).sum()) for k, s in enumerate(SOURCES)} if self.claims else {}}

    def current(self, at: float) -> np.ndarray:
        """``q [U]`` at time ``at`` from the decayed sums alone (no event since the reference time)."""
        d = 0.5 ** (max(at - self.reference_ts, 0.0) / (3600.0 * self.half_life_hours))
        return current_intent(self.mix, self.economic * d, self.total * d, self.alpha)


def event_intents(events: CodedEvents, table: IntentTable, kind: np.ndarray, commercial: np.ndarray) -> np.ndarray:
    """``[E]`` intent codes of coded events (items' kind codes and commercial flags ``[I]``)."""
    return table.of_events(events.type, kind[events.item], commercial[events.item])


def shifted(score: ScoreFn, shifts: tuple[np.ndarray, np.ndarray], economic_items: np.ndarray) -> ScoreFn:
    """``score`` plus each user's intent shift on economic and social items (``[U]`` each)."""
    econ = torch.from_numpy(economic_items.astype(bool))
    up_e, up_s = (torch.from_numpy(a.astype(np.float32)) for a in shifts)

    def inner(u: torch.Tensor) -> torch.Tensor:
        s = score(u).float().contiguous()
        return s + torch.where(econ[None, :], up_e[u][:, None], up_s[u][:, None])

    return inner


def fit_intent(data, circles, table: IntentTable, score: ScoreFn, fallback: ScoreFn,
               valid_task: RankingTask) -> IntentFit:
    """Fit the profile, the estimator and ``beta`` on validation (module doc).

    Args:
        data: the coded dataset (validation carved), ``circles`` its circle rows or None.
        score, fallback: the model's scorers; valid_task: early stopping's validation task.
    """
    n = data.num_users
    kind, commercial = data.item_kind.astype(np.int64), data.commercial.astype(bool)
    train = data.train.take(counts_toward_mix(data.train.type))
    valid = data.valid.take(counts_toward_mix(data.valid.type))
    t_int, v_int = event_intents(train, table, kind, commercial), event_intents(valid, table, kind, commercial)
    both = np.concatenate([t_int, v_int])
    if not len(both) or both.min() == both.max():
        return IntentFit(False, f"every event carries one intent ({'none' if not len(both) else ('social', 'economic')[int(both[0])]})")
    if not np.isfinite(train.ts).any() or not np.isfinite(valid.ts).any():
        return IntentFit(False, "events carry no times: no current intent to infer")
    inner = None
    if circles is not None and len(circles[0]):
        user, contact, strength, is_inner = circles
        inner = (user[is_inner], contact[is_inner], strength[is_inner].astype(np.float64))
    at_valid = float(np.nanmin(valid.ts))
    pi = long_term_mix(train.user, t_int, n, inner).mix
    rows, best = [], None
    for h in HALF_LIVES_H:
        e, t = decayed_sums(train.user, t_int, train.ts, at_valid, 3600 * h, n)
        for a in ALPHAS:
            loss = log_loss(current_intent(pi, e, t, a)[valid.user], v_int)
            rows.append({"half_life_hours": h, "alpha": a, "valid_log_loss": round(loss, 5)})
            if best is None or loss < best[0]:
                best = (loss, h, a, current_intent(pi, e, t, a))
    _, h, a, q_valid = best
    econ_items = item_intent(commercial).astype(bool)
    pair_intent = _pair_intents(valid, v_int, valid_task)
    auto_rows = [{"beta_auto": b, "valid_recall_at_20": round(conditioned(
        score, fallback, valid_task, pair_intent, pi, q_valid, b, econ_items, "auto")["overall"]["recall_at_20"], 5)}
        for b in BETAS]
    ask_rows = [{"beta_ask": b, "valid_recall_at_20": round(conditioned(
        score, fallback, valid_task, pair_intent, pi, q_valid, b, econ_items, "truth")["overall"]["recall_at_20"], 5)}
        for b in BETAS]
    for r in auto_rows + ask_rows:
        logger.info("intent %s", r)
    beta_auto = max(auto_rows, key=lambda r: (r["valid_recall_at_20"], -r["beta_auto"]))["beta_auto"]
    beta_ask = max(ask_rows, key=lambda r: (r["valid_recall_at_20"], -r["beta_ask"]))["beta_ask"]
    # The served profile: everything known before test (train + valid), decayed to its last event.
    known = CodedEvents.concat([train, valid])
    mixes = long_term_mix(known.user, both, n, inner)
    ref = float(np.nanmax(known.ts))
    e, t = decayed_sums(known.user, both, known.ts, ref, 3600 * h, n)
    return IntentFit(True, "events of both intents", h, a, beta_auto, beta_ask, ref, mixes.population,
                     mixes.mix, mixes.source, e, t,
                     tuple(rows + auto_rows + ask_rows))


def truth_report(fit: IntentFit, score: ScoreFn, fallback: ScoreFn, prep, truth) -> dict:
    """:func:`intent_report` on ``prep``'s test task, each pair's true intent and time joined from
    ``truth`` (``user_id, item_id, intent``) and the test events (pairs without truth are left out)."""
    task, data, n_items = prep.test_task, prep.data, prep.idmap.num_items
    u = prep.idmap.user_index(truth["user_id"].to_numpy())
    i = prep.idmap.item_index(truth["item_id"].to_numpy())
    ok = (u >= 0) & (i >= 0)
    keys = u[ok].astype(np.int64) * n_items + i[ok]
    order = np.argsort(keys, kind="stable")
    keys, intents = keys[order], truth["intent"].to_numpy()[ok][order]
    pairs = task.test_user.astype(np.int64) * n_items + task.test_item
    at = np.minimum(np.searchsorted(keys, pairs), max(len(keys) - 1, 0))
    known = (keys[at] == pairs) if len(keys) else np.zeros(len(pairs), bool)
    ev_keys = data.test.user.astype(np.int64) * n_items + data.test.item
    ev_order = np.argsort(ev_keys, kind="stable")
    t_at = np.minimum(np.searchsorted(ev_keys[ev_order], pairs), max(len(ev_keys) - 1, 0))
    ts = data.test.ts[ev_order][t_at] if len(ev_keys) else np.full(len(pairs), np.nan)
    sub = replace(task, test_user=task.test_user[known], test_item=task.test_item[known], unranked=None)
    return intent_report(fit, score, fallback, sub, intents[at][known], data.commercial.astype(bool), ts[known])


def _pair_intents(events: CodedEvents, intents: np.ndarray, task: RankingTask) -> np.ndarray:
    """``[P]`` the observed intent of each of ``task``'s pairs (economic when any of the pair's
    events is), from ``events`` and their ``intents``."""
    n_items = task.num_items
    key = events.user.astype(np.int64) * n_items + events.item
    econ = np.unique(key[intents == 1])
    pairs = task.test_user.astype(np.int64) * n_items + task.test_item
    return np.isin(pairs, econ).astype(np.int8)


def conditioned(score: ScoreFn, fallback: ScoreFn, task: RankingTask, pair_intent: np.ndarray, mix: np.ndarray,
                q: np.ndarray, beta: float, economic_items: np.ndarray, mode: str) -> dict:
    """recall@20 and ndcg@20 of ``task``'s pairs split by their intent (``pair_intent [P]``), each
    group ranked with the shift ``mode`` gives: ``any`` none, ``auto`` from ``q``, ``truth`` the
    group's own intent asked for. One evaluation unit per (user, intent); ``overall`` weighs the
    groups by their units."""
    asked = {"social": np.full(len(mix), EPS), "economic": np.full(len(mix), 1 - EPS)}
    per: dict = {}
    for k, c in enumerate(("social", "economic")):
        sel = pair_intent == k
        if not sel.any():
            continue
        sub = replace(task, test_user=task.test_user[sel], test_item=task.test_item[sel], unranked=None)
        q_mode = {"any": mix, "auto": q, "truth": asked[c]}[mode]
        shift = ranking_shift(q_mode, mix, 0.0 if mode == "any" else beta)
        m = evaluate_ranking(shifted(score, shift, economic_items), sub, shifted(fallback, shift, economic_items),
                             breakdowns=False)
        per[c] = {"recall_at_20": m["recall_at_20"], "ndcg_at_20": m["ndcg_at_20"], "units": m["users"]}
    units = sum(p["units"] for p in per.values())
    overall = {key: sum(p[key] * p["units"] for p in per.values()) / max(units, 1)
               for key in ("recall_at_20", "ndcg_at_20")}
    return {"overall": {**overall, "units": units}, **per}


def intent_report(fit: IntentFit, score: ScoreFn, fallback: ScoreFn, task: RankingTask, true_intent: np.ndarray,
                  commercial: np.ndarray, test_ts: np.ndarray) -> dict:
    """Against the truth (a world's per-event intents): the AUC of the inferred economic probability
    for the true intent of each test pair, and recall@20 / ndcg@20 ranking with intent = truth,
    ``auto`` and ``any``, overall and per true intent (:func:`conditioned`), and the gains.

    Args:
        task: the test task; ``true_intent [P]`` aligned with its pairs; ``test_ts [P]`` their times.
    """
    at = float(np.nanmin(test_ts)) if np.isfinite(test_ts).any() else fit.reference_ts
    q = fit.current(at)
    econ_items = item_intent(commercial).astype(bool)
    out: dict = {"auc": auc(q[task.test_user], true_intent), "at": at, "pairs": int(len(true_intent)),
                 "true_economic_share": float(np.mean(true_intent)) if len(true_intent) else float("nan")}
    for mode, beta in (("any", 0.0), ("auto", fit.beta_auto), ("truth", fit.beta_ask)):
        out[mode] = conditioned(score, fallback, task, true_intent, fit.mix, q, beta, econ_items, mode)
    out["gain"] = {}
    for c in ("overall", "economic", "social"):
        if c not in out["any"]:
            continue
        r = {m: out[m][c]["recall_at_20"] for m in ("any", "auto", "truth")}
        gain = r["truth"] - r["any"]
        out["gain"][c] = {"truth_over_any": gain / r["any"] if r["any"] else float("nan"),
                          "auto_over_any": (r["auto"] - r["any"]) / r["any"] if r["any"] else float("nan"),
                          "auto_recovers": (r["auto"] - r["any"]) / gain if gain > 0 else float("nan")}
    return out
