"""Intent after training: each user's profile, the current-intent model and the ranking's intent
weight, all chosen on validation (docs/model.md, "Intent").

The current-intent model is the two-state filter of :mod:`guanxi.features.intent_filter`: its
three parameters maximise the filter's likelihood of the training interactions (no label, no
truth; :func:`fit_filter`), and its output ``p`` is the probability that the person is in an
economic stretch now. (It replaced a logistic regression whose label was the intent of each user's
first validation interactions: that label was the weak part, experiments/LOG.md.)

The ranking conditioned on intent adds ``beta * log(q_c / b_c)`` to the score of every item of
intent ``c`` (:func:`guanxi.features.intent_profile.usual_shift`), with ``q = eps + (1 - 2 eps) p``
(:func:`guanxi.features.intent_profile.asked`) and ``b`` the same of the person's long-term
``propensity``: nothing when what they did lately says nothing beyond their usual, a lift for the
intent the filter sees now. (Against the long-term observed mix instead, the shift tilts every
person towards their usual intent even with nothing to infer: the episodes-off control then
moves, experiments/LOG.md.) ``any`` is the model's own ranking; ``auto`` uses ``p``.

``beta`` and the filter's renewal rate (the fitted one times 1, 1/2 or 1/4: the likelihood of the
next interaction favours a faster forgetting than ranking does, experiments/LOG.md) maximise
``auto``'s validation recall@20 judged as served (:mod:`guanxi.training.intent_events`: every
validation interaction ranked at its own moment, ``p`` read from everything before it); ``beta``
0, no lift, is on the grid. Data whose events all carry one intent (most public sets) get no fit
and make no intent claim. How the fit does against a world's truth:
:mod:`guanxi.training.intent_truth`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from guanxi.features.coded import CodedEvents
from guanxi.features.intent import IntentTable, counts_toward_mix, item_intent
from guanxi.features.intent_filter import IntentFilter
from guanxi.features.intent_profile import EPS, SOURCES, auc, long_term_mix, usual_shift
from guanxi.training.evaluate import RankingTask, ScoreFn, evaluate_ranking
from guanxi.training.intent_events import before_each, event_metrics, event_task

logger = logging.getLogger(__name__)

BETAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
RATE_SCALES = (1.0, 0.5, 0.25)  # the fitted renewal rate times these: validation picks one
RATE_MAX = 50.0         # renewals a day the filter's fit may reach
FIT_MAX_USERS = 20_000  # users whose interactions fit the filter's three parameters
VALID_MAX_EVENTS = 50_000  # validation interactions (of a seeded sample of users) judging the grid


@dataclass(frozen=True)
class IntentFit:
    """The fitted intent model of one version (module doc). ``mix`` and ``source`` are ``[U]``: the
    long-term mixes from train + valid; ``state``, ``last_ts`` and ``propensity`` ``[U]`` the
    filter's state after each user's last known interaction (train + valid), its time (NaN: none)
    and the user's long-term probability of the economic state; ``fitted_rate`` the renewal rate the
    likelihood gave, before validation's scale (the filter holds the one chosen)."""

    claims: bool
    reason: str
    filter: IntentFilter | None = None
    beta: float = 0.0
    reference_ts: float = 0.0
    population: float = 0.0
    mix: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    state: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    propensity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grid: tuple = ()
    fitted_rate: float | None = None

    def record(self) -> dict:
        """The fit as the metrics JSON's ``intent`` entry (without the per-user arrays)."""
        return {"claims": self.claims, "reason": self.reason,
                **(self.filter.to_dict() if self.filter is not None else {}),
                **({"fitted_rate_per_day": self.fitted_rate} if self.fitted_rate is not None else {}),
                "beta": self.beta, "eps": EPS, "population": self.population, "grid": list(self.grid),
                "sources": {s: int((self.source == k).sum()) for k, s in enumerate(SOURCES)} if self.claims else {}}

    def current(self, at: float) -> np.ndarray:
        """``p [U]`` at time ``at`` (no interaction since the last known one)."""
        return self.filter.carry(self.state, self.last_ts, self.propensity, at)

    def shifts(self, p: np.ndarray, beta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per user ``(economic, social)`` score shifts ``[U]`` for economic-state probabilities
        ``p [U]`` (module doc)."""
        return usual_shift(p, self.propensity, self.beta if beta is None else beta)

    def arrays(self) -> dict[str, np.ndarray]:
        """The bundle's ``intent.npz`` (contracts/bundle.py)."""
        return {"mix": self.mix.astype(np.float32), "source": self.source.astype(np.int8),
                "state": self.state.astype(np.float32), "last_ts": self.last_ts.astype(np.float64),
                "propensity": self.propensity.astype(np.float32)}


def filtered(flt: IntentFilter, user: np.ndarray, intent: np.ndarray, ts: np.ndarray,
             mix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Run ``flt`` over interactions from every user's prior: ``(state, last_ts, propensity [U],
    log-likelihood)``."""
    propensity = flt.propensity(mix)
    state, last_ts = propensity.copy(), np.full(len(mix), np.nan)
    loglik = flt.run(user, intent, ts, state, last_ts, propensity)
    return state, last_ts, propensity, loglik


def fit_filter(user: np.ndarray, intent: np.ndarray, ts: np.ndarray, mix: np.ndarray,
               max_users: int = FIT_MAX_USERS, seed: int = 0) -> IntentFilter:
    """The filter's ``theta0``, ``theta1`` and ``rate`` by the likelihood of the interactions
    (``[E]`` each; ``mix [U]`` the users' long-term observed mix), Nelder-Mead over their logits
    and log (bounded: see ``unpack``), from a social state that shops rarely and stretches of about
    three weeks. Three numbers shared by everyone: the interactions of at most ``max_users``
    users (a seeded sample) fit them as well as all would, in bounded time."""
    from scipy.optimize import minimize

    users = np.unique(user)
    if len(users) > max_users:
        keep = np.isin(user, np.random.default_rng(seed).choice(users, max_users, replace=False))
        user, intent, ts = user[keep], intent[keep], ts[keep]

    def unpack(x: np.ndarray) -> tuple[float, float, float]:
        # within [0.001, 0.999] and from one renewal a year to RATE_MAX a day: data with no
        # stretches at all (every interaction its own draw) drive the rate up, not off the scale
        theta = 0.001 + 0.998 / (1 + np.exp(-np.clip(x[:2], -30, 30)))
        return float(theta[0]), float(theta[1]), float(np.exp(np.clip(x[2], np.log(1 / 365), np.log(RATE_MAX))))

    def loss(x: np.ndarray) -> float:
        t0, t1, rate = unpack(x)
        if t1 <= t0 + 0.05:
            return 1e18
        return -filtered(IntentFilter(t0, t1, rate), user, intent, ts, mix)[3]

    res = minimize(loss, np.array([-2.0, 1.0, np.log(1 / 21)]), method="Nelder-Mead",
                   options={"maxiter": 200, "xatol": 1e-3, "fatol": 1e-2})
    return IntentFilter(*unpack(res.x))


def _sample_users(user: np.ndarray, users: np.ndarray, max_events: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of ``users`` whose interactions (``user [E]``) number at most about
    ``max_events`` (all of them when they already do)."""
    counts = np.bincount(user, minlength=int(users.max(initial=-1)) + 1)[users] if len(user) else np.zeros(len(users))
    if counts.sum() <= max_events:
        return users
    order = np.random.default_rng(seed).permutation(len(users))
    return np.sort(users[order[np.cumsum(counts[order]) <= max_events]])


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
        which = "none" if not len(both) else ("social", "economic")[int(both[0])]
        return IntentFit(False, f"every event carries one intent ({which})")
    if not np.isfinite(train.ts).any() or not np.isfinite(valid.ts).any():
        return IntentFit(False, "events carry no times: no current intent to infer")
    inner = None
    if circles is not None and len(circles[0]):
        user, contact, strength, is_inner = circles
        inner = (user[is_inner], contact[is_inner], strength[is_inner].astype(np.float64))
    pi = long_term_mix(train.user, t_int, n, inner).mix
    fitted = fit_filter(train.user, t_int, train.ts, pi)
    logger.info("intent filter: theta0 %.3f, theta1 %.3f, %.3f renewals a day",
                fitted.theta0, fitted.theta1, fitted.rate)
    econ_items = item_intent(commercial).astype(bool)
    # Judged as served (training/intent_events.py): every validation interaction of the selection's
    # users ranked at its own moment, the filter carried on from train through the earlier ones.
    chosen = np.isin(valid.user, _sample_users(valid.user, np.unique(valid_task.test_user), VALID_MAX_EVENTS))
    task = event_task(valid.take(chosen), v_int[chosen], valid_task.exclude, valid_task.train_count)
    shifts, points = {}, {}
    for scale in RATE_SCALES:
        flt = replace(fitted, rate=fitted.rate * scale)
        state, last_ts, propensity, _ = filtered(flt, train.user, t_int, train.ts, pi)
        p = before_each(flt, state, last_ts, propensity, task)
        for b in BETAS:
            if b > 0 or scale == 1.0:                 # no lift is the same whatever the rate
                name = f"beta {b}, rate x{scale}"
                shifts[name], points[name] = usual_shift(p, propensity[task.user], b), (scale, b)
    got = event_metrics(score, fallback, task, shifts, econ_items)
    grid = []
    for name, (scale, b) in points.items():
        m = got[name]["overall"]
        grid.append({"beta": b, "rate_scale": scale, "valid_recall_at_20": round(m["recall_at_20"], 5)})
        logger.info("intent beta %g, rate x%g: validation recall@20 %.4f (per event)", b, scale, m["recall_at_20"])
    best = max(grid, key=lambda r: (r["valid_recall_at_20"], -r["beta"], r["rate_scale"]))
    beta, flt = best["beta"], replace(fitted, rate=fitted.rate * best["rate_scale"])
    # The served profile: everything known before test (train + valid), filtered to its last event.
    known = CodedEvents.concat([train, valid])
    mixes = long_term_mix(known.user, both, n, inner)
    state, last_ts, propensity, _ = filtered(flt, known.user, both, known.ts, mixes.mix)
    return IntentFit(True, "events of both intents", flt, beta, float(np.nanmax(known.ts)),
                     mixes.population, mixes.mix, mixes.source, state, last_ts, propensity, tuple(grid),
                     fitted.rate)


def conditioned(score: ScoreFn, fallback: ScoreFn, task: RankingTask, pair_intent: np.ndarray,
                shifts: dict[str, tuple[np.ndarray, np.ndarray]], economic_items: np.ndarray) -> dict:
    """For each ranking (``shifts``: name -> per-user economic and social shifts ``[U]``),
    recall@20 and ndcg@20 of ``task``'s pairs by intent (``pair_intent [P]``) and ``overall``:
    one ranking per user, judged on each group of its pairs; ``overall`` weighs the groups by
    their (user, intent) units."""
    out: dict = {}
    for name, shift in shifts.items():
        per: dict = {}
        for k, c in enumerate(("social", "economic")):
            sel = pair_intent == k
            if not sel.any():
                continue
            sub = replace(task, test_user=task.test_user[sel], test_item=task.test_item[sel], unranked=None)
            m = evaluate_ranking(shifted(score, shift, economic_items), sub, shifted(fallback, shift, economic_items),
                                 breakdowns=False)
            per[c] = {"recall_at_20": m["recall_at_20"], "ndcg_at_20": m["ndcg_at_20"], "units": m["users"]}
        units = sum(p["units"] for p in per.values())
        overall = {key: sum(p[key] * p["units"] for p in per.values()) / max(units, 1)
                   for key in ("recall_at_20", "ndcg_at_20")}
        out[name] = {"overall": {**overall, "units": units}, **per}
    return out
