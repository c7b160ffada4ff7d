"""A request's intent: what the person is here for now, and how the ranking follows it.

A served version's intent profile (the bundle's ``intent.npz`` and ``bundle.json``'s ``intent``,
fitted on validation: :mod:`guanxi.training.intent_fit`) gives each user a long-term economic
share and decayed sums of their events up to the version's last training event. At request time
the sums decay on to now and take the user's own recent events from the recent view (an event
acknowledged seconds ago counts; nothing is retrained):
``q = (sum w * economic + alpha * mix) / (sum w + alpha)``, ``w = 0.5 ** (age / half_life)``
(:func:`guanxi.features.intent_profile.current_intent`). The source says what decided it:
``recent`` (events since training), else the profile's ``history``, ``circle`` or ``population``.

``intent`` of a request: ``auto`` adds to each candidate's score ``beta_auto * log(q_c / mix_c)``
for its item's intent ``c`` (economic when the item is commercial); ``social`` / ``economic`` ask
for that intent: its eligible items come first, the best others fill the slate (``filled`` counts
them); ``any`` is the model's own ranking. A version that makes no intent claim (its data had one
intent, or no times) ranks every request as ``any`` and says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guanxi.bundle import Bundle
from guanxi.features.intent import INTENTS, IntentTable, counts_toward_mix
from guanxi.features.intent_profile import SOURCES, current_intent, ranking_shift

ASKED = ("auto", "social", "economic", "any")


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
        self.half_life_s = 3600.0 * float(meta["half_life_hours"])
        self.alpha = float(meta["alpha"])
        self.beta_auto, self.beta_ask, self.eps = float(meta["beta_auto"]), float(meta["beta_ask"]), float(meta["eps"])
        self.reference_ts = float(meta["reference_ts"])
        self.population = float(meta.get("population", 0.5))
        arrays = bundle.intent or {}
        self.mix, self.source = arrays["mix"].astype(np.float64), arrays["source"]
        self.economic, self.total = arrays["economic"].astype(np.float64), arrays["total"].astype(np.float64)

    def use(self, u: int, asked: str, now: float, own=None) -> IntentUse:
        """The intent of one request by user index ``u`` (-1: unknown to the version) asking for
        ``asked``; ``own``: the user's recent events (:class:`guanxi.serving.recent_facts.OwnRecent`)."""
        if asked not in ASKED:
            raise ValueError(f"intent must be one of {list(ASKED)}, got {asked!r}")
        if not self.claims:
            return IntentUse(None, None, "any")
        mix = self.mix[u] if u >= 0 else self.population
        source = SOURCES[int(self.source[u])] if u >= 0 else "population"
        d = 0.5 ** (max(now - self.reference_ts, 0.0) / self.half_life_s)
        econ, total = (self.economic[u] * d, self.total[u] * d) if u >= 0 else (0.0, 0.0)
        if own is not None and len(own.items):
            keep = counts_toward_mix(own.types)
            if keep.any():
                items = own.items[keep]
                w = np.power(0.5, np.maximum(now - own.ts[keep], 0.0) / self.half_life_s)
                intents = self.table.of_events(own.types[keep], self.kind_code[items], self.commercial[items])
                econ, total = econ + float(w @ intents), total + float(w.sum())
                source = "recent"
        q = float(current_intent(np.array([mix]), np.array([econ]), np.array([total]), self.alpha)[0])
        if asked != "auto":
            return IntentUse(q, source, asked)
        up_e, up_s = ranking_shift(np.array([q]), np.array([mix]), self.beta_auto)
        return IntentUse(q, source, "auto", (float(up_e[0]), float(up_s[0])))

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
