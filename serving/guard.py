"""The service's front door (ASGI middleware, outside BentoML's request parsing): authentication,
content type, body size and a concurrency limit, each answered before any body is parsed.

- Health (``/livez``, ``/readyz``, ``/healthz``), ``/metrics`` and the OpenAPI document and page
  are open. Every other path needs ``Authorization: Bearer $GUANXI_API_TOKEN`` when that is set
  (401 without it, 403 with a wrong one); ``/admin/*`` needs ``$GUANXI_ADMIN_TOKEN`` and is
  disabled (403) when that is unset.
- A request body, and any declared content type, must be ``application/json`` (415 otherwise: an
  HTML form, ``text/plain`` or ``multipart/form-data`` sent cross-site is never read as JSON).
- A body over ``max_body_bytes`` is refused with 413 from its ``Content-Length``, or while it
  streams in, before anything parses it.
- At most ``max_concurrency`` requests are in flight per worker; the next one gets 503 with
  ``Retry-After``, so an overload sheds load instead of queueing until every request times out.
"""
from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable

from guanxi.serving.settings import ServeSettings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/docs", "/"})
OPEN_PREFIXES = ("/static_content/",)


class Refused(Exception):
    """A request the guard answers itself."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


async def reply(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Send ``{"error": message}`` with ``status``."""
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def check_token(scope: Scope, expected: str | None, what: str, required: bool) -> None:
    """Raise :class:`Refused` unless the request carries ``Bearer expected`` (no check when
    ``expected`` is None and not ``required``)."""
    if expected is None:
        if required:
            raise Refused(403, f"{what} is disabled: set GUANXI_ADMIN_TOKEN on the server to enable it")
        return
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, f"{what} needs 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Refused(403, f"{what}: wrong token")


def check_content_type(scope: Scope) -> None:
    """Raise :class:`Refused` (415) unless the body is declared ``application/json``."""
    raw = _header(scope, b"content-type")
    media = (raw or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Refused(415, f"Content-Type must be application/json, got {raw!r}" if raw
                      else "Content-Type must be application/json (the header is missing)")


class GuardMiddleware:
    """See the module doc. Settings come from the environment when the app is built (in each
    worker), or are given (tests)."""

    def __init__(self, app: App, settings: ServeSettings | None = None) -> None:
        self.app = app
        s = settings or ServeSettings.from_env()
        self.api_token = s.api_token
        self.admin_token = s.admin_token
        self.max_body = s.max_body_bytes
        self.max_concurrency = s.max_concurrency
        self.in_flight = 0          # one event loop per worker: a plain counter is race-free

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrency:
            await reply(send, 503, f"this worker already has {self.in_flight} requests in flight "
                                   f"(GUANXI_MAX_CONCURRENCY); retry shortly", {"Retry-After": "1"})
            return
        self.in_flight += 1
        try:
            try:
                admin = path.startswith("/admin/")
                check_token(scope, self.admin_token if admin else self.api_token, path, required=admin)
                body = await self._read_body(scope, receive)
            except Refused as refused:
                await reply(send, refused.status, str(refused), refused.headers)
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body (at most ``max_body`` bytes), checked for its content type."""
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise Refused(400, f"Content-Length is not a number: {declared!r}")
            if int(declared) > self.max_body:
                raise Refused(413, f"the body has {int(declared)} bytes, above the limit of {self.max_body} "
                                   "(GUANXI_MAX_BODY_BYTES)")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise Refused(413, f"the body is over the limit of {self.max_body} bytes (GUANXI_MAX_BODY_BYTES)")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body or _header(scope, b"content-type") is not None:    # an empty body may declare nothing
            check_content_type(scope)
        return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the buffered body once, then the client's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def inner() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return inner
