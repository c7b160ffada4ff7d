"""A request's intent: what the person is here for now, and how the ranking follows it.

A served version's intent profile (the bundle's ``intent.npz`` and ``bundle.json``'s ``intent``,
fitted on training and validation: :mod:`guanxi.training.intent_fit`) gives each user a long-term
economic share and the current-intent estimator's state at the user's last training interaction.
With the two-state filter (:mod:`guanxi.features.intent_filter`, ``intent.estimator: filter``), at
request time the filter takes the user's own recent events from the recent view (the latest
:data:`RECENT_FOR_INTENT` of them; an event acknowledged seconds ago counts; nothing is retrained)
and is carried on to now: ``p``, the probability that the person is in an economic stretch now.
Older bundles (no ``estimator``) hold a logistic model over decayed sums of the interactions
(:func:`guanxi.features.intent_profile.state_probability`), which decay on to now and take the
recent events the same way. The source says what decided it: ``recent`` (events since training),
else the profile's ``history``, ``circle`` or ``population``.

``intent`` of a request: ``auto`` adds to each candidate's score ``beta * log(q_c / b_c)``
for its item's intent ``c`` (economic when the item is commercial), ``q = eps + (1 - 2 eps) p`` and
``b`` the same of the person's long-term propensity (:func:`guanxi.features.intent_profile.usual_shift`;
older bundles: ``b`` their long-term mix); ``social`` / ``economic`` ask for that intent: its eligible items come first, the best others fill the slate (``filled`` counts
them); ``any`` is the model's own ranking. A version that makes no intent claim (its data had one
intent, or no times) ranks every request as ``any`` and says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guanxi.bundle import Bundle
from guanxi.features.intent import INTENTS, IntentTable, counts_toward_mix
from guanxi.features.intent_filter import IntentFilter
from guanxi.features.intent_profile import asked as asked_q
from guanxi.features.intent_profile import (HALF_LIVES_H, SOURCES, decay_to, intent_features,
                                            ranking_shift, state_probability, usual_shift)

ASKED = ("auto", "social", "economic", "any")
RECENT_FOR_INTENT = 256     # the latest own recent events the filter reads (older ones are long decided)


@dataclass(frozen=True)
class IntentUse:
    """One request's intent: the inferred economic probability ``q`` (None without a claim), its
    ``source``, the intent ``used`` to rank, and the score ``shift`` of economic and social items."""

    q: float | None
    source: str | None
    used: str
    shift: tuple[float, float] = (0.0, 0.0)

    def block(self, filled: int) -> dict:
        """The response's ``intent`` block."""
        mix = None if self.q is None else {"social": round(1.0 - self.q, 4), "economic": round(self.q, 4)}
        return {"mix": mix, "source": self.source, "used": self.used, "filled": filled}


class IntentModel:
    """A served version's intent (module doc).

    Args:
        bundle: the served bundle.
        commercial, kind_code: ``[I]`` the catalogue's commercial flags and kind codes.
    """

    def __init__(self, bundle: Bundle, commercial: np.ndarray, kind_code: np.ndarray) -> None:
        meta = bundle.meta.get("intent") or {}
        self.claims = bool(meta.get("claims")) and bundle.intent is not None
        self.item_economic = np.asarray(commercial, bool)           # an item's intent: economic when commercial
        self.kind_code = kind_code
        self.commercial = np.asarray(commercial, bool)
        if not self.claims:
            return
        self.table = IntentTable(meta["table"], "the bundle's intent table")
        self.beta, self.eps = float(meta["beta"]), float(meta["eps"])
        self.reference_ts = float(meta["reference_ts"])
        self.population = float(meta.get("population", 0.5))
        arrays = bundle.intent or {}
        self.mix, self.source = arrays["mix"].astype(np.float64), arrays["source"]
        self.filter: IntentFilter | None = None
        if meta.get("estimator") == "filter":
            self.filter = IntentFilter(float(meta["theta0"]), float(meta["theta1"]), float(meta["rate_per_day"]))
            self.state, self.last_ts = arrays["state"].astype(np.float64), arrays["last_ts"].astype(np.float64)
            self.propensity = arrays["propensity"].astype(np.float64)
        else:                                   # an older bundle's logistic model
            self.coef, self.intercept = np.asarray(meta["coef"], np.float64), float(meta["intercept"])
            self.economic, self.total = arrays["economic"].astype(np.float64), arrays["total"].astype(np.float64)
            self.half_lives_s = 3600.0 * np.asarray(HALF_LIVES_H)

    def use(self, u: int, asked: str, now: float, own=None) -> IntentUse:
        """The intent of one request by user index ``u`` (-1: unknown to the version) asking for
        ``asked``; ``own``: the user's recent events (:class:`guanxi.serving.recent_facts.OwnRecent`)."""
        if asked not in ASKED:
            raise ValueError(f"intent must be one of {list(ASKED)}, got {asked!r}")
        if not self.claims:
            return IntentUse(None, None, "any")
        mix = self.mix[u] if u >= 0 else self.population
        source = SOURCES[int(self.source[u])] if u >= 0 else "population"
        intents, ts = self._own(own)
        if len(ts):
            source = "recent"
        if self.filter is not None:
            p, usual = self._filtered(u, mix, now, intents, ts)
        else:
            p = self._logistic(u, mix, now, intents, ts)
        if asked != "auto":
            return IntentUse(p, source, asked)
        if self.filter is not None:
            up_e, up_s = usual_shift(np.array([p]), np.array([usual]), self.beta, self.eps)
        else:
            up_e, up_s = ranking_shift(np.array([asked_q(p, self.eps)]), np.array([mix]), self.beta)
        return IntentUse(p, source, "auto", (float(up_e[0]), float(up_s[0])))

    def _own(self, own) -> tuple[np.ndarray, np.ndarray]:
        """The observed intents and times (``[N]`` each) of the user's latest recent events that
        count toward the mix (:data:`RECENT_FOR_INTENT` at most)."""
        if own is None or not len(own.items):
            return np.zeros(0, np.int8), np.zeros(0)
        keep = counts_toward_mix(own.types)
        items, types, ts = own.items[keep], own.types[keep], own.ts[keep].astype(np.float64)
        if len(ts) > RECENT_FOR_INTENT:
            latest = np.argsort(ts, kind="stable")[-RECENT_FOR_INTENT:]
            items, types, ts = items[latest], types[latest], ts[latest]
        return self.table.of_events(types, self.kind_code[items], self.commercial[items]), ts

    def _filtered(self, u: int, mix: float, now: float, intents: np.ndarray, ts: np.ndarray) -> tuple[float, float]:
        """``p`` from the two-state filter (module doc), and the person's long-term propensity."""
        flt = self.filter
        if u >= 0:
            state, last, prop = float(self.state[u]), float(self.last_ts[u]), float(self.propensity[u])
        else:
            prop = float(flt.propensity(np.array([mix]))[0])
            state, last = prop, float("nan")
        state, last = flt.follow(state, last, prop, intents, ts)
        return float(flt.carry(np.array([state]), np.array([last]), np.array([prop]), now)[0]), prop

    def _logistic(self, u: int, mix: float, now: float, intents: np.ndarray, ts: np.ndarray) -> float:
        """``p`` from an older bundle's logistic model over decayed sums (module doc)."""
        if u >= 0:
            econ, total = decay_to(self.economic[u], self.total[u], now - self.reference_ts)
        else:
            econ, total = np.zeros(len(HALF_LIVES_H)), np.zeros(len(HALF_LIVES_H))
        if len(ts):
            w = np.power(0.5, np.maximum(now - ts, 0.0)[:, None] / self.half_lives_s[None, :])
            econ, total = econ + intents @ w, total + w.sum(axis=0)
        features = intent_features(np.array([mix]), econ[None, :], total[None, :])
        return float(state_probability(features, self.coef, self.intercept)[0])

    def shift(self, use: IntentUse, items: np.ndarray) -> np.ndarray:
        """``[N]`` the score shift of ``items``."""
        if use.shift == (0.0, 0.0):
            return np.zeros(len(items))
        return np.where(self.item_economic[items], use.shift[0], use.shift[1])

    def filled(self, use: IntentUse, items: list[int]) -> int:
        """How many of a slate's ``items`` are not of the intent asked for (0 unless one was)."""
        if use.used not in INTENTS:
            return 0
        want = use.used == "economic"
        return int(sum(bool(self.item_economic[i]) != want for i in items))
