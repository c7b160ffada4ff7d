"""The exposure policy (docs/serving.md, "Exposure policy"): a pure function from scored
candidates, the user's circles and history, the impression log and the user's settings to a slate.

Rules, in the order they apply:
1. consumed items (the model's history and the user's own recent engagements), muted items (and
   items whose owner is muted), hidden items ("see fewer"), commercial items for a user who opted
   out, and items at their frequency cap are dropped (settings and hides apply even with the policy
   off); the account of a hidden item, and its content, is demoted by ``hide_demotion`` or removed
   (``hide_account``) for ``fatigue_days``;
2. trust gating: a commercial item needs inner-circle support >= threshold or to be self-sought;
3. outward decay: an item with neither inner support nor self-sought loses
   ``outward_decay * (1 - s)`` from its score, ``s`` the strongest supporting outer tie;
4. the slate is filled best-first with at most ``floor(max_commercial_share * len(slate))``
   commercial items; with ``prefer`` (a request that asked for an intent), the preferred eligible
   items come first, best-first, and the best others fill what they leave of ``k``;
5. each item gets a reason (``inner_circle`` first, then ``self_sought``, ``similar_taste``, ``popular``) and
   the number of the user's own contacts who engaged with it (nobody else is ever counted).

Every knob lives in ``serving/policy.yaml``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
from pydantic import model_validator

from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS
from guanxi.yaml_config import FrozenConfig, load_yaml_config

REASONS = ("inner_circle", "self_sought", "similar_taste", "popular")


class PolicyConfig(FrozenConfig):
    """Every key is documented in ``serving/policy.yaml``."""

    enabled: bool = True
    candidate_factor: int = 5
    candidate_min: int = 50
    commercial_min_inner_support: float = 0.5
    allow_self_sought: bool = True
    self_sought_types: str = "follow,pay"
    outward_decay: float = 0.5
    max_commercial_share: float = 0.3
    frequency_cap: int = 3
    frequency_window_hours: float = 24.0
    impression_retention_days: float = 7.0
    recent_window_hours: float = 48.0
    recent_refresh_seconds: float = 2.0
    recent_max_per_user: int = 10_000
    recent_max_events: int = 1_000_000
    reconsumable_kinds: str = ""
    hide_account: str = "demote"
    hide_demotion: float = 1.0
    fatigue_days: float = 14.0

    @model_validator(mode="after")
    def _check(self) -> "PolicyConfig":
        if not 0.0 <= self.max_commercial_share <= 1.0:
            raise ValueError(f"max_commercial_share must be in [0, 1], got {self.max_commercial_share}")
        for name in ("candidate_factor", "candidate_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("frequency_cap", "frequency_window_hours", "impression_retention_days",
                     "outward_decay", "commercial_min_inner_support", "recent_window_hours", "hide_demotion",
                     "fatigue_days", "recent_max_per_user", "recent_max_events"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.recent_refresh_seconds <= 0:
            raise ValueError(f"recent_refresh_seconds must be > 0, got {self.recent_refresh_seconds}")
        if self.hide_account not in ("demote", "remove", "off"):
            raise ValueError(f"hide_account must be demote, remove or off, got {self.hide_account!r}")
        bad = [k for k in self.reconsumable_kind_names if k not in ITEM_KINDS]
        if bad:
            raise ValueError(f"reconsumable_kinds: unknown kind {bad[0]!r}; valid kinds: {list(ITEM_KINDS)}")

        unknown = [t for t in self.sought_type_names if t not in ITEM_EVENT_TYPES]
        if unknown:
            raise ValueError(f"self_sought_types: unknown event type {unknown[0]!r}; "
                             f"valid types: {list(ITEM_EVENT_TYPES)}")
        return self

    @property
    def reconsumable_kind_names(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.reconsumable_kinds.split(",") if k.strip())

    @property
    def sought_type_names(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.self_sought_types.split(",") if t.strip())

    @cached_property
    def sought_mask(self) -> int:
        """Bit mask of the event types that make an item self-sought (bit ``t`` for
        ``ITEM_EVENT_TYPES[t]``, as in the bundle's history)."""
        return sum(1 << ITEM_EVENT_TYPES.index(t) for t in set(self.sought_type_names))

    def candidates_per_kind(self, k: int) -> int:
        return max(self.candidate_min, self.candidate_factor * k)


def load_policy(path: str | Path | None = None) -> PolicyConfig:
    """Defaults from ``serving/policy.yaml``, then the keys set in ``path``.

    Raises:
        ValueError: a missing file, an unknown key (the valid keys are listed) or a bad value.
    """
    return load_yaml_config(PolicyConfig(), "guanxi.serving", "policy.yaml", path, what="policy")


@dataclass(frozen=True)
class Candidates:
    """Scored candidates for one request, all arrays ``[N]``.

    Args:
        item_idx: item indices (distinct).
        score: the model's (or fallback's) score, higher is better.
        commercial: commercial flag per item.
        owner_idx: the owner's item index, -1 when none.
        inner_support: sum of tie strength over inner-circle contacts who engaged with the item.
        outer_strength: strongest tie among outer-circle contacts who engaged (0 when none).
        contacts_engaged: how many of the user's contacts (inner or outer) engaged.
        self_sought: the user engaged with the item, its owner or its category before.
        impressions: times shown to the user within the frequency window.
    """

    item_idx: np.ndarray
    score: np.ndarray
    commercial: np.ndarray
    owner_idx: np.ndarray
    inner_support: np.ndarray
    outer_strength: np.ndarray
    contacts_engaged: np.ndarray
    self_sought: np.ndarray
    impressions: np.ndarray


@dataclass(frozen=True)
class UserState:
    """What the policy needs to know about the user beyond the candidates.

    Args:
        consumed: item indices the user already consumed (the model's history, and recent
            engagements with items of kinds that are not re-consumable).
        muted: item indices the user muted (an account's content is muted with it).
        commercial_opt_out: no commercial item at all.
        hidden: item indices the user hid ("see fewer") within ``fatigue_days``.
        fatigued: accounts (item indices) whose items the user hid within ``fatigue_days``: they
            and their content are demoted or removed (``hide_account``).
    """

    consumed: np.ndarray
    muted: np.ndarray
    commercial_opt_out: bool = False
    hidden: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fatigued: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class SlateItem(NamedTuple):
    """One slate entry (a named tuple: built 20 times per request, cheaper than a dataclass)."""

    item_idx: int
    score: float
    commercial: bool
    reason: str
    contacts_engaged: int


def apply_policy(cands: Candidates, user: UserState, config: PolicyConfig, k: int,
                 fallback: str | None, prefer: np.ndarray | None = None) -> list[SlateItem]:
    """Choose at most ``k`` items from ``cands`` under the policy (module doc), best first.

    Args:
        cands: scored candidates.
        user: consumed items, mutes and opt-out.
        config: the policy knobs.
        k: slate size (>= 1).
        fallback: ``None`` when scores come from the model, else ``"circle"`` or ``"popular"``
            (decides between the ``similar_taste`` and ``popular`` reasons).
        prefer: ``[N]`` bool, candidates to place first (the intent asked for), or None.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    keep = ~_member(cands.item_idx, user.consumed)
    if len(user.muted):
        keep &= ~_member(cands.item_idx, user.muted) & ~_member(cands.owner_idx, user.muted)
    if user.commercial_opt_out:
        keep &= ~cands.commercial
    score = cands.score.astype(np.float64, copy=True)
    if len(user.hidden):
        keep &= ~_member(cands.item_idx, user.hidden)
    if len(user.fatigued) and config.hide_account != "off":
        tired = _member(cands.item_idx, user.fatigued) | _member(cands.owner_idx, user.fatigued)
        if config.hide_account == "remove":
            keep &= ~tired
        else:
            score -= config.hide_demotion * tired
    trusted = cands.inner_support > 0
    if config.allow_self_sought:
        trusted = trusted | cands.self_sought
    if config.enabled:
        if config.frequency_cap > 0:
            keep &= cands.impressions < config.frequency_cap
        gated = (cands.inner_support >= config.commercial_min_inner_support)
        if config.allow_self_sought:
            gated = gated | cands.self_sought
        keep &= ~cands.commercial | gated
        score -= np.where(trusted, 0.0, config.outward_decay * (1.0 - np.clip(cands.outer_strength, 0, 1)))
    keep &= np.isfinite(score)
    order = np.flatnonzero(keep)
    if prefer is None:
        order = order[np.argsort(-score[order], kind="stable")]
    else:
        order = order[np.lexsort((-score[order], ~prefer[order]))]
    share = config.max_commercial_share if config.enabled else 1.0
    chosen = np.array(_fill(order.tolist(), cands.commercial[order].tolist(), share, k), np.int64)
    # Python values in one conversion per field (indexing numpy scalars per item costs more).
    inner = (cands.inner_support[chosen] > 0).tolist()
    sought = (cands.self_sought[chosen] & config.allow_self_sought).tolist()
    other = "similar_taste" if fallback is None else "popular"
    return [SlateItem(i, s, c, "inner_circle" if a else "self_sought" if b else other, n)
            for i, s, c, a, b, n in zip(cands.item_idx[chosen].tolist(), score[chosen].tolist(),
                                        cands.commercial[chosen].tolist(), inner, sought,
                                        cands.contacts_engaged[chosen].tolist())]


def _member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """``[n]`` bool: ``values [n]`` found in ``of [m]`` (a sorted lookup: cheaper than ``np.isin``
    for the few hundred candidates of a request)."""
    if not len(of) or not len(values):
        return np.zeros(len(values), bool)
    ref = np.sort(of)
    pos = np.minimum(np.searchsorted(ref, values), len(ref) - 1)
    return ref[pos] == values


def _fill(order: list[int], commercial: list[bool], share: float, k: int) -> list[int]:
    """Best-first slate of at most ``k`` of the positions ``order`` (``commercial`` flags them, in
    the same order) with commercial items <= floor(share * size)."""
    chosen: list[int] = []
    flags: list[bool] = []
    n_comm = 0
    limit = math.floor(share * k + 1e-9)
    for i, comm in zip(order, commercial):
        if len(chosen) == k:
            break
        if comm:
            if n_comm + 1 > limit:
                continue
            n_comm += 1
        chosen.append(i)
        flags.append(comm)
    # A short slate (few candidates) may still be over the share: drop the weakest commercial items.
    while n_comm and n_comm > math.floor(share * len(chosen) + 1e-9):
        last = max(j for j, f in enumerate(flags) if f)
        chosen.pop(last)
        flags.pop(last)
        n_comm -= 1
    return chosen


def slate_violations(cands: Candidates, user: UserState, config: PolicyConfig, k: int,
                     slate: list[SlateItem]) -> list[str]:
    """What a slate breaks of the policy's invariants (empty when it keeps them all): used to
    replay a candidate model's slates before it may be promoted."""
    pos = {int(i): j for j, i in enumerate(cands.item_idx)}
    bad: list[str] = []
    if len(slate) > k or len({s.item_idx for s in slate}) != len(slate):
        bad.append("slate longer than k or with repeats")
    consumed, muted, hidden = set(user.consumed.tolist()), set(user.muted.tolist()), set(user.hidden.tolist())
    removed = set(user.fatigued.tolist()) if config.hide_account == "remove" else set()
    for s in slate:
        j = pos.get(s.item_idx)
        if j is None:
            bad.append(f"item {s.item_idx} is not a candidate")
            continue
        if s.item_idx in consumed:
            bad.append(f"item {s.item_idx} was consumed")
        if s.item_idx in muted or int(cands.owner_idx[j]) in muted:
            bad.append(f"item {s.item_idx} is muted")
        if s.item_idx in hidden:
            bad.append(f"item {s.item_idx} was hidden")
        if s.item_idx in removed or int(cands.owner_idx[j]) in removed:
            bad.append(f"item {s.item_idx} belongs to an account the user hid an item of")
        if s.commercial and user.commercial_opt_out:
            bad.append(f"commercial item {s.item_idx} for an opted-out user")
        if s.contacts_engaged != int(cands.contacts_engaged[j]):
            bad.append(f"item {s.item_idx} explains with a count that is not its contacts'")
        if config.enabled and s.commercial and not (
                cands.inner_support[j] >= config.commercial_min_inner_support
                or (config.allow_self_sought and cands.self_sought[j])):
            bad.append(f"commercial item {s.item_idx} without a trusted path")
        if config.enabled and config.frequency_cap and cands.impressions[j] >= config.frequency_cap:
            bad.append(f"item {s.item_idx} past its frequency cap")
    if config.enabled and sum(s.commercial for s in slate) > math.floor(
            config.max_commercial_share * len(slate) + 1e-9):
        bad.append("commercial share above the cap")
    return bad
