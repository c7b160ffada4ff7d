"""A person's intent profile: their long-term mix of social and economic intent, and the intent they
have now, read from what they just did (docs/data.md, "Intent").

- **Long-term mix** ``pi`` (:func:`long_term_mix`): the economic share of a user's interactions
  (:class:`guanxi.features.intent.IntentTable`), shrunk towards a prior with ``PSEUDO_EVENTS``
  pseudo-events. The prior is the inner circle's pooled mix (each contact's events weighted by tie
  strength) when the circle holds at least ``MIN_EVENTS`` interactions, else the population's.
  Source: ``history`` when the user has ``MIN_EVENTS`` interactions of their own, else ``circle``
  or ``population``, whichever prior was used.
- **Current intent** ``p`` (:func:`state_probability`): the probability that the person is in an
  economic stretch now, a logistic model over :func:`intent_features`: the long-term mix, and the
  economic share and volume of their interactions each weighted ``0.5 ** (age / half_life)`` for
  several half-lives (:data:`HALF_LIVES_H`). The decayed sums are kept at a reference time (a
  version's last training event) and decay on from there, so a served version adds the events
  acknowledged since without keeping any event list. The model's weights are fitted on validation
  (:mod:`guanxi.training.intent_fit`).

Probabilities are kept within ``[CLAMP, 1 - CLAMP]``, so no intent is ever ruled out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_EVENTS = 5
PSEUDO_EVENTS = 5.0
CLAMP = 0.01
SOURCES = ("history", "circle", "population", "recent")
HALF_LIVES_H = (6.0, 24.0, 72.0, 168.0, 504.0)
EPS = 0.05         # an intent asked for (or known) is 95 % sure, never certain


@dataclass(frozen=True)
class MixResult:
    """Per user ``[U]``: economic share ``mix``, its ``source`` (index into :data:`SOURCES`) and the
    interaction counts it came from (``economic``, ``total``)."""

    mix: np.ndarray
    source: np.ndarray
    economic: np.ndarray
    total: np.ndarray
    population: float


def long_term_mix(user: np.ndarray, intent: np.ndarray, num_users: int,
                  inner: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> MixResult:
    """Long-term mixes from interactions ``user [E]`` with intents ``intent [E]`` (0/1).

    Args:
        inner: ``(user [C], contact [C], strength [C])`` inner-circle rows (each direction listed
            as the circles list it), or None.
    """
    economic = np.bincount(user, weights=intent.astype(np.float64), minlength=num_users)
    total = np.bincount(user, minlength=num_users).astype(np.float64)
    population = float(economic.sum() / max(total.sum(), 1.0))
    prior = np.full(num_users, population)
    source = np.full(num_users, SOURCES.index("population"), np.int8)
    if inner is not None and len(inner[0]):
        u, v, s = inner
        c_econ = np.bincount(u, weights=s * economic[v], minlength=num_users)
        c_total = np.bincount(u, weights=s * total[v], minlength=num_users)
        c_events = np.bincount(u, weights=total[v], minlength=num_users)
        has = c_events >= MIN_EVENTS
        prior[has] = c_econ[has] / np.maximum(c_total[has], 1e-12)
        source[has] = SOURCES.index("circle")
    source[total >= MIN_EVENTS] = SOURCES.index("history")
    mix = (economic + PSEUDO_EVENTS * prior) / (total + PSEUDO_EVENTS)
    return MixResult(np.clip(mix, CLAMP, 1 - CLAMP), source, economic, total, population)


def decayed_sums(user: np.ndarray, intent: np.ndarray, ts: np.ndarray, at: float, half_life_s: float,
                 num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """``(economic [U], total [U])``: each user's interactions before ``at``, weighted
    ``0.5 ** ((at - ts) / half_life_s)`` (events after ``at`` or untimed are left out)."""
    ok = np.isfinite(ts) & (ts <= at)
    w = np.power(0.5, (at - ts[ok]) / half_life_s)
    return (np.bincount(user[ok], weights=w * intent[ok], minlength=num_users),
            np.bincount(user[ok], weights=w, minlength=num_users))


def decayed_stack(user: np.ndarray, intent: np.ndarray, ts: np.ndarray, at: float, num_users: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(economic [U, H], total [U, H])``: :func:`decayed_sums` for every half-life of
    :data:`HALF_LIVES_H`."""
    pairs = [decayed_sums(user, intent, ts, at, 3600 * h, num_users) for h in HALF_LIVES_H]
    return np.stack([e for e, _ in pairs], axis=1), np.stack([t for _, t in pairs], axis=1)


def decay_to(economic: np.ndarray, total: np.ndarray, age_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Decayed sums ``[.., H]`` kept at one time, decayed on by ``age_s`` seconds."""
    d = np.power(0.5, max(age_s, 0.0) / (3600 * np.asarray(HALF_LIVES_H)))
    return economic * d, total * d


def intent_features(mix: np.ndarray, economic: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``[U, 1 + 2H]``: logit of the long-term mix, then per half-life the smoothed economic share
    of the decayed interactions and their decayed volume (log1p)."""
    m = np.clip(mix, CLAMP, 1 - CLAMP)
    share = (economic + 0.5) / (total + 1.0)
    return np.column_stack([np.log(m / (1 - m)), share, np.log1p(total)])


def state_probability(features: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """``[U]`` the probability of an economic stretch now, from :func:`intent_features`."""
    return 1.0 / (1.0 + np.exp(-(features @ np.asarray(coef) + intercept)))


def asked(p: np.ndarray, eps: float = EPS) -> np.ndarray:
    """The economic probability a ranking follows when the person is economic with probability
    ``p``: ``1 - eps`` when sure, ``eps`` when sure they are not."""
    return eps + (1 - 2 * eps) * np.asarray(p)


def ranking_shift(q: np.ndarray, mix: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per user ``(economic items' shift [U], social items' shift [U])`` added to the model's
    scores: ``beta * log(q_c / pi_c)`` for each intent ``c`` (0 when ``q`` equals the mix)."""
    q, mix = np.clip(q, CLAMP, 1 - CLAMP), np.clip(mix, CLAMP, 1 - CLAMP)
    return beta * np.log(q / mix), beta * np.log((1 - q) / (1 - mix))


def usual_shift(p: np.ndarray, propensity: np.ndarray, beta: float, eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ranking_shift` for economic-state probabilities ``p [U]`` against each person's usual,
    their long-term ``propensity [U]``, both read by :func:`asked`: nothing moves when ``p`` says
    no more than the propensity (the two-state filter's ranking, docs/model.md "Intent")."""
    return ranking_shift(asked(p, eps), asked(propensity, eps), beta)


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC-AUC of ``score`` for binary ``label`` (ties count half); NaN with one class only."""
    label = np.asarray(label, bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    s = np.asarray(score)[order]
    # average ranks of ties
    first = np.concatenate([[True], s[1:] != s[:-1]])
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.concatenate([starts[1:], [len(s)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = avg[group]
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
