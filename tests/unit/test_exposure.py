"""The exposure rule lives in the service itself (serving/guard.py), so every launch path keeps it:
without GUANXI_API_TOKEN a worker answers clients on its own machine only; admin routes and the
open paths are matched below the app's root_path; non-HTTP scopes never reach the app."""
from __future__ import annotations

import asyncio
import json

import pytest

from guanxi.serving.guard import GuardMiddleware
from guanxi.serving.settings import ServeSettings


class App:
    """Records whether a request got through."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})


def _call(guard, scope) -> tuple[int | None, dict, list]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b'{"user_id": "u1"}', "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start["status"] if start else None), (json.loads(body) if body else {}), sent


def _scope(client=("127.0.0.1", 5000), path="/feedback", root_path="", headers=()):
    return {"type": "http", "method": "POST", "path": path, "root_path": root_path, "client": client,
            "headers": [(b"content-type", b"application/json"), *headers]}


def _guard(**settings):
    app = App()
    return GuardMiddleware(app, ServeSettings(**settings)), app


@pytest.mark.parametrize("client", [("10.1.2.3", 5000), ("192.168.0.7", 1), ("2001:db8::1", 1), ("testclient", 1), None])
def test_without_a_token_a_client_from_another_machine_gets_403(client):
    guard, app = _guard()
    status, body, _ = _call(guard, _scope(client=client))
    assert status == 403 and "GUANXI_API_TOKEN" in body["error"] and app.seen == []


@pytest.mark.parametrize("client", [("127.0.0.1", 5000), ("::1", 5000), ("127.0.0.5", 1)])
def test_without_a_token_loopback_clients_are_answered(client):
    guard, app = _guard()
    assert _call(guard, _scope(client=client))[0] == 200 and app.seen == ["http"]


@pytest.mark.parametrize("header", [b"x-forwarded-for", b"forwarded", b"x-real-ip"])
def test_a_request_through_a_local_proxy_is_not_loopback(header):
    guard, _ = _guard()
    assert _call(guard, _scope(headers=[(header, b"203.0.113.9")]))[0] == 403


def test_a_token_or_insecure_opens_the_service_to_other_machines():
    guard, _ = _guard(api_token="t")
    scope = _scope(client=("10.1.2.3", 1), headers=[(b"authorization", b"Bearer t")])
    assert _call(guard, scope)[0] == 200
    guard, _ = _guard(insecure=True)
    assert _call(guard, _scope(client=("10.1.2.3", 1)))[0] == 200


def test_health_stays_open_to_probes_from_other_machines():
    guard, _ = _guard()
    assert _call(guard, _scope(client=("10.1.2.3", 1), path="/readyz"))[0] == 200


def test_admin_routes_keep_their_token_under_a_path_prefix():
    guard, app = _guard(api_token="t")        # admin disabled: no admin token set
    scope = _scope(path="/guanxi/admin/reload", root_path="/guanxi", headers=[(b"authorization", b"Bearer t")])
    status, body, _ = _call(guard, scope)
    assert status == 403 and "GUANXI_ADMIN_TOKEN" in body["error"] and app.seen == []
    guard, _ = _guard(api_token="t")
    assert _call(guard, _scope(path="/guanxi/readyz", root_path="/guanxi", client=("10.0.0.1", 1)))[0] == 200


def test_a_websocket_is_closed_and_other_scopes_never_reach_the_app():
    guard, app = _guard(api_token="t")
    _, _, sent = _call(guard, {"type": "websocket", "path": "/recommend", "client": ("10.1.2.3", 1), "headers": []})
    assert sent == [{"type": "websocket.close", "code": 1008}] and app.seen == []
    _call(guard, {"type": "something-else", "path": "/feedback"})
    assert app.seen == []
