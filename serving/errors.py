"""ASGI middleware: a 400 from request validation says which field is wrong in its ``error`` line.

BentoML answers a body that fails validation with ``{"error": "1 validation error for Input",
"detail": [{"loc": [...], "msg": ...}]}``. The product team reads ``error`` first, so this rewrites it
to name the field, e.g. ``"k: Input should be less than or equal to 100"`` (``detail`` is kept).
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def field_message(body: dict) -> str | None:
    """``"field.path: message; ..."`` from a pydantic-style ``detail`` list, or None."""
    detail = body.get("detail")
    if not isinstance(detail, list) or not detail:
        return None
    parts = []
    for err in detail[:5]:
        if not isinstance(err, dict):
            return None
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


class FieldErrorMiddleware:
    """Rewrite the ``error`` line of 400 JSON responses that carry a validation ``detail``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            try:
                data = json.loads(body)
                text = field_message(data) if isinstance(data, dict) else None
                if text:
                    data["error"] = text
                    body = json.dumps(data).encode()
            except ValueError:
                pass
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
