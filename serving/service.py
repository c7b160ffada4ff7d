"""The BentoML service (thin): HTTP in, :class:`guanxi.serving.api.RecommendationAPI` out.

Run it with ``guanxi serve`` (or ``bentoml serve guanxi.serving.service:Guanxi``). Configuration comes
from the environment (:class:`guanxi.serving.settings.ServeSettings`); ``GUANXI_WORKERS`` sets the number
of worker processes (default 1). BentoML adds ``/livez``, ``/readyz``, ``/metrics`` (Prometheus)
and ``/docs.json`` (OpenAPI). :mod:`guanxi.serving.guard` checks tokens, content type, body size and
concurrency before a body is parsed; the request models (:mod:`guanxi.serving.schemas`) refuse unknown
fields and hostile values with a 400 naming the field.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

import bentoml
from starlette.responses import JSONResponse, Response

from guanxi.serving.errors import FieldErrorMiddleware
from guanxi.serving.events import SettingsError, StoreUnavailable
from guanxi.serving.gc_settings import settle_after_startup
from guanxi.serving.guard import GuardMiddleware
from guanxi.serving.schemas import (ExplainRequest, Explanation, FeedbackEvent, FeedbackRequest, Recommendation,
                                    RecommendRequest, SettingsRequest)

logger = logging.getLogger(__name__)


class RecommendInput(bentoml.IODescriptor, RecommendRequest):
    pass


class FeedbackInput(bentoml.IODescriptor, FeedbackRequest):
    pass


class SettingsInput(bentoml.IODescriptor, SettingsRequest):
    pass


class ExplainInput(bentoml.IODescriptor, ExplainRequest):
    pass


async def _explorer_page(scope, receive, send) -> None:
    """``GET /explore``: the explorer's page (serving/explorer.html), read from the package."""
    from pathlib import Path

    if scope["type"] != "http":
        return
    if scope.get("method") not in ("GET", "HEAD"):
        body, status = b'{"error": "the explorer page answers GET"}', 405
        kind = b"application/json"
    else:
        body, status = (Path(__file__).with_name("explorer.html")).read_bytes(), 200
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})


def _fail(ctx: bentoml.Context, status: int, message: str, retry_after: int | None = None) -> dict:
    """An error body, with its status (and ``Retry-After``) set on ``ctx``."""
    ctx.response.status_code = status
    if retry_after is not None:
        ctx.response.headers["Retry-After"] = str(retry_after)
    return {"error": message}


# Access logs off: one log line per request cost more than the recommendation itself under load
# (BentoML's Prometheus metrics still count every request).
@bentoml.service(name="guanxi", workers=int(os.environ.get("GUANXI_WORKERS", "1")),
                 traffic={"timeout": 60}, logging={"access": {"enabled": False}})
class Guanxi:
    """Recommendations with trust-gated exposure, feedback, settings and model reload."""

    def __init__(self) -> None:
        from guanxi.serving.api import RecommendationAPI
        from guanxi.serving.champion import BENTO_MODEL_NAME, BENTO_SCHEME, ChampionHolder
        from guanxi.serving.event_stores import open_event_store
        from guanxi.serving.policy import load_policy
        from guanxi.serving.settings import ServeSettings
        from guanxi.registry import use_tracking

        self.settings = ServeSettings.from_env()
        model_uri = self.settings.model_uri
        bento = getattr(Guanxi, "bento", None)        # set by BentoML when serving a built Bento
        if bento is not None and "model_uri" not in self.settings.model_fields_set:
            packed = [m.tag for m in bento.info.all_models if m.tag.name == BENTO_MODEL_NAME]
            if packed:                                # the Bento's own model: no registry needed
                model_uri = f"{BENTO_SCHEME}{packed[0]}"
        tracking = use_tracking(self.settings.tracking_uri)
        ann = self.settings.retrieval()
        self.api = RecommendationAPI(ChampionHolder(model_uri, self.settings.poll_seconds,
                                                    cache_dir=self.settings.model_cache,
                                                    tracking_uri=tracking, ann=ann),
                                     open_event_store(self.settings.events_db, self.settings.events_busy_ms,
                                                      statement_timeout_ms=self.settings.events_busy_ms),
                                     load_policy(self.settings.policy), poll_seconds=self.settings.poll_seconds,
                                     store_timeout_s=self.settings.store_timeout_ms / 1000)
        # Everything loaded so far lives as long as the worker: keep the GC from rescanning it, and
        # make full collections rare (GC pauses drove the latency tail; serving/gc_settings.py).
        settle_after_startup(self.settings.gc_thresholds)

    def __is_ready__(self) -> bool:
        return self.api.holder.current is not None

    @bentoml.api(route="/recommend", input_spec=RecommendInput, output_spec=Recommendation)
    async def recommend(self, user_id: str, k: int = 20, kinds: Optional[list[str]] = None,
                        intent: str = "auto") -> Recommendation:
        """Top ``k`` items for ``user_id`` after the exposure policy, each with its reason, ranked for
        ``intent`` (auto: the intent inferred from the user's latest events)."""
        # The body is written as JSON text (guanxi.serving.body); the Recommendation model documents it in
        # OpenAPI (re-validating our own output would only add latency).
        try:
            body = await self.api.recommend_async(user_id, k, kinds, intent)
        except StoreUnavailable as exc:
            return JSONResponse({"error": str(exc)}, 503,  # type: ignore[return-value]
                                headers={"Retry-After": str(exc.retry_after)})
        return Response(body, media_type="application/json")  # type: ignore[return-value]

    @bentoml.api(route="/feedback", input_spec=FeedbackInput)
    def feedback(self, events: list[FeedbackEvent], ctx: bentoml.Context) -> dict:
        """Store a batch of events durably (all or none); ``event_id`` makes a retry idempotent."""
        try:
            return self.api.feedback([e.model_dump() for e in events])
        except StoreUnavailable as exc:
            return _fail(ctx, 503, str(exc), exc.retry_after)

    @bentoml.api(route="/settings", input_spec=SettingsInput)
    def settings_(self, user_id: str, ctx: bentoml.Context, commercial_opt_out: Optional[bool] = None,
                  mute: list[str] = [], unmute: list[str] = []) -> dict:  # noqa: B006 - pydantic copies
        """Change and return the user's settings (muting an account also hides its content)."""
        try:
            return self.api.settings(user_id, commercial_opt_out, list(mute), list(unmute))
        except SettingsError as exc:
            return _fail(ctx, 400, str(exc))
        except StoreUnavailable as exc:
            return _fail(ctx, 503, str(exc), exc.retry_after)

    @bentoml.api(route="/admin/explain", input_spec=ExplainInput, output_spec=Explanation)
    def admin_explain(self, user_id: str, k: int = 20, kinds: Optional[list[str]] = None,
                      intent: str = "auto") -> dict:
        """The explorer's view of a request (circles, intent, slate, what the policy held back);
        nothing is logged or changed (the guard checks ``GUANXI_ADMIN_TOKEN``)."""
        from guanxi.serving.explain import explain_request

        # Written as JSON directly (as /recommend is); the Explanation model documents it in OpenAPI.
        return JSONResponse(explain_request(self.api, user_id, k, kinds, intent))  # type: ignore[return-value]

    @bentoml.api(route="/admin/reload")
    def admin_reload(self, ctx: bentoml.Context) -> dict:
        """Check the model alias now and move to its version (the guard checks ``GUANXI_ADMIN_TOKEN``)."""
        result = self.api.reload()
        if result["error"]:
            ctx.response.status_code = 409
        return result


Guanxi.mount_asgi_app(_explorer_page, path="/explore")
# Outermost first: the guard answers before anything reads the body.
Guanxi.add_asgi_middleware(GuardMiddleware)
Guanxi.add_asgi_middleware(FieldErrorMiddleware)
