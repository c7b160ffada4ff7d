"""HTTP bodies of the recommendation API (ARCHITECTURE.md "Interfaces other people call").

Pydantic models: BentoML validates each request against them and answers a 400 whose ``detail``
names the field (``loc``) before any of our code runs, so a mistyped field never reaches a 5xx.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from features.schema import ITEM_EVENT_TYPES, ITEM_KINDS

MAX_BATCH = 1000
MAX_MUTES = 1000

Kind = Literal[ITEM_KINDS]  # type: ignore[valid-type]
EventType = Literal[ITEM_EVENT_TYPES]  # type: ignore[valid-type]
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FeedbackEvent(BaseModel):
    """One event, as in the canonical events table."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: Id
    item_id: Id
    type: EventType
    ts: Optional[Annotated[int, Field(ge=0)]] = None
    value: Optional[float] = None
    event_id: Optional[Id] = None


class Reason(BaseModel):
    type: Literal["inner_circle", "self_sought", "similar_taste", "popular"]
    contacts_engaged: int


class RecommendedItem(BaseModel):
    item_id: str
    kind: Kind
    score: float
    commercial: bool
    reason: Reason


class Recommendation(BaseModel):
    user_id: str
    model_version: str
    fallback: Optional[Literal["circle", "popular"]]
    items: list[RecommendedItem]
