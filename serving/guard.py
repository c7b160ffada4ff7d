"""The service's front door (ASGI middleware, outside BentoML's request parsing): exposure,
authentication, content type, body size and a concurrency limit, each answered before any body is
parsed. It runs in every worker whatever launched it (``guanxi serve``, ``bentoml serve`` of the
module or of a built Bento), so the same rules hold on every launch path.

- Health (``/livez``, ``/readyz``, ``/healthz``), ``/metrics`` and the OpenAPI document and page
  are open. Every other path needs ``Authorization: Bearer $GUANXI_API_TOKEN`` when that is set
  (401 without it, 403 with a wrong one); ``/admin/*`` needs ``$GUANXI_ADMIN_TOKEN`` and is
  disabled (403) when that is unset. Paths are matched below the ASGI ``root_path``, so a
  service mounted under a prefix keeps its rules.
- Exposure: without ``GUANXI_API_TOKEN`` a worker answers loopback clients only. A request from
  another address, or one that came through a proxy (``Forwarded``, ``X-Forwarded-For`` or
  ``X-Real-IP`` present: a proxy on this machine would make the world look local), gets 403 naming
  the setting, whatever host the server was bound to (a built Bento binds every interface by
  default). ``GUANXI_INSECURE=1`` (``guanxi serve --insecure``) is the explicit opt-out.
- The explorer (``/explore`` and ``/admin/explain``) shows a person's contacts: it needs the admin
  token whenever one is set; with no token at all it answers this machine only (loopback, no proxy),
  and is off for everyone else. The page at ``/explore`` holds no data (everything personal comes
  from ``/admin/explain``), so with an admin token set it is served to whoever may reach the service
  and asks for the token; ``/admin/explain`` checks it.
- Only HTTP is served: a WebSocket handshake is closed (1008), other scope types are dropped;
  ``lifespan`` passes through.
- A request body, and any declared content type, must be ``application/json`` (415 otherwise: an
  HTML form, ``text/plain`` or ``multipart/form-data`` sent cross-site is never read as JSON).
- A body over ``max_body_bytes`` is refused with 413 from its ``Content-Length``, or while it
  streams in, before anything parses it.
- At most ``max_concurrency`` requests are in flight per worker; the next one gets 503 with
  ``Retry-After``, so an overload sheds load instead of queueing until every request times out.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from typing import Any, Awaitable, Callable

from guanxi.serving.settings import ServeSettings

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/docs", "/"})
EXPLORER_PATHS = ("/explore", "/admin/explain")
OPEN_PREFIXES = ("/static_content/",)
PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


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


def route_of(scope: Scope) -> str:
    """The request's path below the ASGI ``root_path`` (a prefix the app is mounted under)."""
    path = scope.get("path", "") or "/"
    root = (scope.get("root_path") or "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return path


def is_loopback_client(scope: Scope) -> bool:
    """Whether the request came straight from this machine: a loopback peer address, and no
    proxy header (a proxy on this machine forwards other machines' requests from loopback)."""
    client = scope.get("client")
    if not client:
        return False
    try:
        loopback = ipaddress.ip_address(str(client[0]).split("%")[0]).is_loopback
    except ValueError:
        return False
    return loopback and not any(key.lower() in PROXY_HEADERS for key, _ in scope.get("headers", ()))


def check_exposure(scope: Scope, api_token: str | None, insecure: bool) -> None:
    """Raise :class:`Refused` (403) for a request from beyond this machine when no API token is set."""
    if api_token is None and not insecure and not is_loopback_client(scope):
        raise Refused(403, "this server has no GUANXI_API_TOKEN, so it answers only clients on its own machine "
                           "(loopback, not through a proxy): set GUANXI_API_TOKEN on the server and send "
                           "'Authorization: Bearer <token>', or set GUANXI_INSECURE=1 to serve it open")


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
        self.insecure = s.insecure
        self.in_flight = 0          # one event loop per worker: a plain counter is race-free
        if self.api_token is None:
            logger.warning("GUANXI_API_TOKEN is not set: %s", "GUANXI_INSECURE is set, so every client is "
                           "answered" if self.insecure else "answering clients on this machine only (loopback)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind != "http":
            return
        path = route_of(scope)
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrency:
            await reply(send, 503, f"this worker already has {self.in_flight} requests in flight "
                                   f"(GUANXI_MAX_CONCURRENCY); retry shortly", {"Retry-After": "1"})
            return
        self.in_flight += 1
        try:
            try:
                if path.rstrip("/") in EXPLORER_PATHS:
                    self._check_explorer(scope, path.rstrip("/"))
                else:
                    check_exposure(scope, self.api_token, self.insecure)
                    admin = path.startswith("/admin/")
                    check_token(scope, self.admin_token if admin else self.api_token, path, required=admin)
                body = await self._read_body(scope, receive) if path.rstrip("/") != "/explore" else b""
            except Refused as refused:
                await reply(send, refused.status, str(refused), refused.headers)
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.in_flight -= 1

    def _check_explorer(self, scope: Scope, path: str) -> None:
        """The explorer's rule (module doc): the admin token when one is set; with no token at all,
        loopback clients only; otherwise off."""
        if self.admin_token is not None:
            if path == "/admin/explain":
                check_token(scope, self.admin_token, path, required=True)
            return
        if self.api_token is None and is_loopback_client(scope):
            return
        raise Refused(403, f"{path} shows people's contacts: it needs GUANXI_ADMIN_TOKEN on the server (and the "
                           "token in the request), or a server without tokens reached from its own machine")

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
