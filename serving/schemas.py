"""HTTP bodies of the recommendation API (docs/serving.md and docs/contracts.md).

Pydantic models, strict and closed: BentoML validates each request against them and answers a 400
whose ``error`` names the field (``loc``) before any of our code runs, so a mistyped, unknown or
hostile field never reaches a 5xx or a silent change. An unknown top-level field is refused (a
misspelt ``kind`` would otherwise mean "every kind"); numbers must be finite; ``ts`` must be a
plausible time; every id follows :mod:`guanxi.features.id_rules` (printable, trimmed, non-empty,
at most 256 characters).
"""
from __future__ import annotations

import time
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from guanxi.features.id_rules import DESCRIPTION, MAX_ID_LENGTH, id_problem
from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS

MAX_BATCH = 1000            # events per /feedback request
MAX_MUTES = 1000            # ids per mute or unmute list in one /settings request
TS_MIN = 946_684_800        # 2000-01-01T00:00:00Z: older event times are refused
TS_FUTURE_S = 86_400        # event times more than a day ahead of the server clock are refused

Kind = Literal[ITEM_KINDS]  # type: ignore[valid-type]
Intent = Literal["social", "economic"]
EventType = Literal[ITEM_EVENT_TYPES]  # type: ignore[valid-type]


def _valid_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"id {problem}")
    return value


# One definition of an id for every endpoint (guanxi.features.id_rules, shared with the loaders).
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_valid_id),
               Field(description=DESCRIPTION)]
Finite = Annotated[float, Field(allow_inf_nan=False)]

_CLOSED = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(BaseModel):
    """``POST /recommend``."""

    model_config = _CLOSED

    user_id: Id
    k: Annotated[int, Field(ge=1, le=100)] = 20
    kinds: Optional[Annotated[list[Kind], Field(min_length=1, max_length=len(ITEM_KINDS))]] = None
    intent: Literal["auto", "social", "economic", "any"] = Field(
        "auto", description="what to rank for: auto (the intent inferred from the user's latest events), "
                            "social, economic, or any (the model's own ranking)")

    @field_validator("kinds")
    @classmethod
    def _each_kind_once(cls, kinds: list[str] | None) -> list[str] | None:
        if kinds is not None and len(set(kinds)) != len(kinds):
            repeated = next(k for k in kinds if kinds.count(k) > 1)
            raise ValueError(f"kind {repeated!r} is listed more than once")
        return kinds


class FeedbackEvent(BaseModel):
    """One event, as in the canonical events table."""

    model_config = _CLOSED

    user_id: Id
    item_id: Id
    type: EventType
    ts: Optional[Annotated[int, Field(ge=TS_MIN)]] = None
    value: Optional[Finite] = None
    event_id: Optional[Id] = None

    @field_validator("ts")
    @classmethod
    def _not_in_the_future(cls, ts: int | None) -> int | None:
        if ts is not None and ts > time.time() + TS_FUTURE_S:
            raise ValueError(f"{ts} is more than a day after the server's clock ({int(time.time())})")
        return ts


class FeedbackRequest(BaseModel):
    """``POST /feedback``."""

    model_config = _CLOSED

    events: Annotated[list[FeedbackEvent], Field(min_length=1, max_length=MAX_BATCH)]


class SettingsRequest(BaseModel):
    """``POST /settings``: only the fields given change; none given reads the settings."""

    model_config = _CLOSED

    user_id: Id
    commercial_opt_out: Optional[bool] = None
    mute: Annotated[list[Id], Field(max_length=MAX_MUTES)] = []
    unmute: Annotated[list[Id], Field(max_length=MAX_MUTES)] = []


class Reason(BaseModel):
    type: Literal["inner_circle", "self_sought", "similar_taste", "popular"]
    contacts_engaged: int


class RecommendedItem(BaseModel):
    item_id: str
    kind: Kind
    score: float
    commercial: bool
    intent: Intent = Field(description="the item's intent: economic when it is commercial")
    reason: Reason


class IntentMix(BaseModel):
    social: float
    economic: float


class IntentBlock(BaseModel):
    mix: Optional[IntentMix] = Field(description="the inferred intent now (null: the version makes no intent claim)")
    source: Optional[Literal["recent", "history", "circle", "population"]] = Field(
        description="what decided the mix: events since training, the user's history, their inner circle, "
                    "or the population")
    used: Literal["auto", "social", "economic", "any"] = Field(description="the intent the ranking followed")
    filled: int = Field(description="items not of the intent asked for, filled in because too few "
                                    "eligible items fit it (0 unless social or economic was asked)")


class Recommendation(BaseModel):
    user_id: str
    model_version: str
    fallback: Optional[Literal["circle", "popular"]]
    intent: IntentBlock
    items: list[RecommendedItem]


class ExplainRequest(RecommendRequest):
    """``POST /admin/explain``: the same fields as ``/recommend``; nothing is logged or changed."""


class Contact(BaseModel):
    user_id: str
    strength: float


class Circles(BaseModel):
    inner: list[Contact]
    outer: list[Contact]
    counts: dict[str, int]


class ExplainedItem(BaseModel):
    rank: int
    item_id: str
    kind: Kind
    score: float
    commercial: bool
    intent: Intent
    reason: Reason
    contacts: list[str] = Field(description="the person's contacts who engaged with the item (nobody else)")


class HeldItem(BaseModel):
    item_id: str
    kind: Kind
    score: float
    commercial: bool
    reason: Literal["kind filter", "muted", "opt-out", "hidden", "consumed recently", "frequency cap",
                    "no trusted path", "share cap"]


class HeldBack(BaseModel):
    counts: dict[str, int]
    items: list[HeldItem]


class Explanation(BaseModel):
    """The explorer's view of one request (serving/explain.py)."""

    user_id: str
    known: bool
    model_version: str
    trained_at: Optional[str]
    fallback: Optional[Literal["circle", "popular"]]
    circles: Circles
    intent: IntentBlock
    settings: dict
    slate: list[ExplainedItem]
    held_back: HeldBack

