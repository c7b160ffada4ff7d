"""The BentoML service (thin): HTTP in, :class:`serving.api.RecommendationAPI` out.

Run it with ``guanxi serve`` (or ``bentoml serve serving.service:Guanxi``). Configuration comes
from the environment (:class:`serving.settings.ServeSettings`); ``GUANXI_WORKERS`` sets the number
of worker processes (default 1). BentoML adds ``/livez``, ``/readyz``, ``/metrics`` (Prometheus)
and ``/docs.json`` (OpenAPI).
"""
from __future__ import annotations

import hmac
import logging
import os
from typing import Annotated, Optional

import bentoml
from pydantic import Field
from starlette.responses import Response

from serving.errors import FieldErrorMiddleware
from serving.gc_settings import settle_after_startup
from serving.schemas import MAX_BATCH, MAX_MUTES, FeedbackEvent, Id, Kind, Recommendation

logger = logging.getLogger(__name__)


def _bearer(ctx: bentoml.Context) -> str | None:
    header = ctx.request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _deny(ctx: bentoml.Context, expected: str | None, what: str, required: bool) -> dict | None:
    """An error body (and status on ``ctx``) when the request lacks the right bearer token."""
    if expected is None:
        if not required:
            return None
        ctx.response.status_code = 403
        return {"error": f"{what} is disabled: set GUANXI_ADMIN_TOKEN on the server to enable it"}
    got = _bearer(ctx)
    if got is None:
        ctx.response.status_code = 401
        return {"error": f"{what} needs 'Authorization: Bearer <token>'"}
    if not hmac.compare_digest(got.encode(), expected.encode()):
        ctx.response.status_code = 403
        return {"error": f"{what}: wrong token"}
    return None


# Access logs off: one log line per request cost more than the recommendation itself under load
# (BentoML's Prometheus metrics still count every request).
@bentoml.service(name="guanxi", workers=int(os.environ.get("GUANXI_WORKERS", "1")),
                 traffic={"timeout": 60}, logging={"access": {"enabled": False}})
class Guanxi:
    """Recommendations with trust-gated exposure, feedback, settings and model reload."""

    def __init__(self) -> None:
        from serving.api import RecommendationAPI
        from serving.champion import ChampionHolder
        from serving.events import SQLiteEventStore
        from serving.policy import load_policy
        from serving.retrieval import RetrievalConfig
        from serving.settings import ServeSettings
        from training.registry import use_tracking

        self.settings = ServeSettings.from_env()
        tracking = use_tracking(self.settings.tracking_uri)
        ann = RetrievalConfig(min_items=self.settings.ann_min_items, nprobe=self.settings.ann_nprobe,
                              table_max_scores=self.settings.table_max_scores,
                              table_depth=self.settings.table_depth)
        self.api = RecommendationAPI(ChampionHolder(self.settings.model_uri, self.settings.poll_seconds,
                                                    cache_dir=self.settings.model_cache,
                                                    tracking_uri=tracking, ann=ann),
                                     SQLiteEventStore(self.settings.events_db), load_policy(self.settings.policy))
        # Everything loaded so far lives as long as the worker: keep the GC from rescanning it, and
        # make full collections rare (GC pauses drove the latency tail; serving/gc_settings.py).
        settle_after_startup(self.settings.gc_thresholds)

    def __is_ready__(self) -> bool:
        return self.api.holder.current is not None

    @bentoml.api(route="/recommend")
    async def recommend(self, user_id: Id, k: Annotated[int, Field(ge=1, le=100, strict=True)] = 20,
                        kinds: Optional[Annotated[list[Kind], Field(min_length=1, max_length=3)]] = None,
                        ) -> Recommendation:
        """Top ``k`` items for ``user_id`` after the exposure policy, each with its reason."""
        # The body is written as JSON text (serving.body); the Recommendation model documents it in
        # OpenAPI (re-validating our own output would only add latency).
        body = await self.api.recommend_async(user_id, k, kinds)
        return Response(body, media_type="application/json")  # type: ignore[return-value]

    @bentoml.api(route="/feedback")
    def feedback(self, events: Annotated[list[FeedbackEvent], Field(min_length=1, max_length=MAX_BATCH)],
                 ctx: bentoml.Context) -> dict:
        """Store a batch of events durably (all or none); ``event_id`` makes a retry idempotent."""
        denied = _deny(ctx, self.settings.api_token, "/feedback", required=False)
        if denied:
            return denied
        return self.api.feedback([e.model_dump() for e in events])

    @bentoml.api(route="/settings")
    def settings_(self, user_id: Id, ctx: bentoml.Context, commercial_opt_out: Optional[Annotated[bool, Field(strict=True)]] = None,
                  mute: Annotated[list[Id], Field(max_length=MAX_MUTES)] = [],  # noqa: B006 - pydantic copies
                  unmute: Annotated[list[Id], Field(max_length=MAX_MUTES)] = [],  # noqa: B006
                  ) -> dict:
        """Change and return the user's settings (muting an account also hides its content)."""
        denied = _deny(ctx, self.settings.api_token, "/settings", required=False)
        if denied:
            return denied
        return self.api.settings(user_id, commercial_opt_out, list(mute), list(unmute))

    @bentoml.api(route="/admin/reload")
    def admin_reload(self, ctx: bentoml.Context) -> dict:
        """Check the model alias now and move to its version (needs ``GUANXI_ADMIN_TOKEN``)."""
        denied = _deny(ctx, self.settings.admin_token, "/admin/reload", required=True)
        if denied:
            return denied
        result = self.api.reload()
        if result["error"]:
            ctx.response.status_code = 409
        return result


Guanxi.add_asgi_middleware(FieldErrorMiddleware)
