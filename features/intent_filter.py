"""The intent a person has now, as a two-state filter over what they did (docs/model.md, "Intent").

A person is in an economic or a social state. The state renews at ``rate`` per day (a stretch of
shopping or of keeping up with people ends), the next one drawn from the person's own long-term
economic share ``propensity``, so that, with no event in between, the probability of the economic
state ``t`` days later is

    propensity + (p0 - propensity) * exp(-rate * t).

Each interaction's observed intent (:class:`guanxi.features.intent.IntentTable`) is economic with
probability ``theta1`` in the economic state and ``theta0`` in the social one; ``propensity`` is read
from the long-term observed mix ``pi`` as ``(pi - theta0) / (theta1 - theta0)``. Filtering a person's
interactions in time order gives the probability of the economic state after the last one; it is
carried on to any later time by the formula above. No label is needed: the three parameters
maximise the filter's likelihood of the training interactions
(:func:`guanxi.training.intent_fit.fit_filter`). A served version keeps, per user, the filtered
probability after their last training interaction and its time, and filters the events
acknowledged since in at request time (:mod:`guanxi.serving.intent_now`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DAY_S = 86_400.0
PROPENSITY_CLIP = 0.02          # no one is sure never (or always) to shop


@dataclass(frozen=True)
class IntentFilter:
    """The filter's parameters (module doc): ``theta0 < theta1`` in (0, 1), ``rate`` per day."""

    theta0: float
    theta1: float
    rate: float

    def __post_init__(self) -> None:
        if not 0.0 < self.theta0 < self.theta1 < 1.0 or not self.rate > 0.0:
            raise ValueError(f"intent filter needs 0 < theta0 < theta1 < 1 and rate > 0, got {self}")

    def propensity(self, mix: np.ndarray) -> np.ndarray:
        """``[U]`` each person's long-term probability of the economic state, from the observed mix."""
        p = (np.asarray(mix, np.float64) - self.theta0) / (self.theta1 - self.theta0)
        return np.clip(p, PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)

    def carry(self, state: np.ndarray, last_ts: np.ndarray, propensity: np.ndarray,
              at: float | np.ndarray) -> np.ndarray:
        """``[U]`` the economic-state probability at time ``at`` (seconds; one per person or one for
        all) of people whose filtered probability was ``state`` at ``last_ts`` (NaN: no interaction
        yet, ``state`` is the prior)."""
        gap = np.where(np.isnan(last_ts), 0.0, np.maximum(at - np.nan_to_num(last_ts), 0.0) / DAY_S)
        return propensity + (state - propensity) * np.exp(-self.rate * gap)

    def run(self, user: np.ndarray, intent: np.ndarray, ts: np.ndarray, state: np.ndarray,
            last_ts: np.ndarray, propensity: np.ndarray, before: np.ndarray | None = None) -> float:
        """Filter interactions into each person's state, in place; returns the log-likelihood.

        Args:
            user: ``[E]`` user indices; intent: ``[E]`` observed intents (1 economic); ts: ``[E]``
                seconds (interactions without a time are left out).
            state, last_ts, propensity: ``[U]`` float arrays; ``state`` and ``last_ts`` are updated.
            before: optional ``[E]`` float array, filled with the economic-state probability just
                before each interaction (what a request at that moment reads; NaN without a time).
        """
        keep = np.flatnonzero(np.isfinite(ts))
        if before is not None:
            before[:] = np.nan
        user, intent, ts = user[keep], intent[keep], ts[keep].astype(np.float64)
        order = np.lexsort((ts, user))
        rows = keep[order]
        u, o, t = user[order], intent[order] > 0, ts[order]
        first = np.concatenate([[True], u[1:] != u[:-1]]) if len(u) else np.zeros(0, bool)
        pos = np.arange(len(u)) - np.maximum.accumulate(np.where(first, np.arange(len(u)), 0))
        by_pos = np.argsort(pos, kind="stable")             # every user's k-th interaction, k = 0, 1, ...
        bounds = np.concatenate([[0], np.cumsum(np.bincount(pos))]) if len(pos) else np.zeros(1, np.int64)
        loglik = 0.0
        for k in range(len(bounds) - 1):
            sel = by_pos[bounds[k]:bounds[k + 1]]
            uk, ok, tk = u[sel], o[sel], t[sel]
            prior = self.carry(state[uk], last_ts[uk], propensity[uk], tk)
            if before is not None:
                before[rows[sel]] = prior
            like1 = np.where(ok, self.theta1, 1 - self.theta1)
            like0 = np.where(ok, self.theta0, 1 - self.theta0)
            evidence = prior * like1 + (1 - prior) * like0
            loglik += float(np.log(evidence).sum())
            state[uk] = prior * like1 / evidence
            last_ts[uk] = tk
        return loglik

    def follow(self, state: float, last_ts: float, propensity: float, intent: np.ndarray,
               ts: np.ndarray) -> tuple[float, float]:
        """One person's ``(state, last_ts)`` after their interactions ``intent``, ``ts`` (``[N]``
        each, in any order; the request path's version of :meth:`run`)."""
        order = np.argsort(ts, kind="stable")
        for o, t in zip(intent[order].tolist(), ts[order].astype(np.float64).tolist()):
            gap = 0.0 if math.isnan(last_ts) else max(t - last_ts, 0.0) / DAY_S
            prior = propensity + (state - propensity) * math.exp(-self.rate * gap)
            l1, l0 = (self.theta1, self.theta0) if o > 0 else (1 - self.theta1, 1 - self.theta0)
            state, last_ts = prior * l1 / (prior * l1 + (1 - prior) * l0), t
        return state, last_ts

    def to_dict(self) -> dict:
        """The parameters as ``bundle.json``'s ``intent`` entry holds them."""
        return {"estimator": "filter", "theta0": self.theta0, "theta1": self.theta1, "rate_per_day": self.rate}
