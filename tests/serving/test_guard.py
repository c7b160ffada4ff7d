"""What a hostile client or a busy user hits over HTTP: tokens, content types, body size, hostile
numbers and fields, a locked event log (the in-process app; its API token is set)."""
from __future__ import annotations

import sqlite3
import time

import pytest

from guanxi.serving.events import MAX_MUTES_TOTAL
from guanxi.serving.schemas import TS_MIN

pytestmark = pytest.mark.slow

NO_AUTH = {"Authorization": ""}


def _count(client, table: str, where: str = "1", params: tuple = ()) -> int:
    with sqlite3.connect(client.events_db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[0]


@pytest.mark.parametrize("path, body", [("/recommend", {"user_id": "u1"}),
                                        ("/feedback", {"events": [{"user_id": "u1", "item_id": "c1", "type": "view"}]}),
                                        ("/settings", {"user_id": "u1"})])
def test_every_endpoint_needs_the_api_token_when_it_is_set(client, path, body):
    r = client.post(path, json=body, headers=NO_AUTH)
    assert r.status_code == 401 and "Bearer" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    assert client.post(path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post(path, json=body).status_code == 200


def test_health_readiness_metrics_and_openapi_stay_open(client):
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert client.get(path, headers=NO_AUTH).status_code == 200, path


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", b"user_id=u1&k=5"),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="user_id"\r\n\r\nu1\r\n--xyz--\r\n'),
    ("multipart/form-data", b'{"user_id": "u1"}'),
    ("text/plain", b'{"user_id": "u1"}'),
    (None, b'{"user_id": "u1"}'),
])
def test_only_json_bodies_are_read(client, content_type, body):
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/recommend", "/feedback", "/settings"):
        r = client.post(path, content=body, headers=headers)
        if content_type is None:     # httpx adds no type of its own to raw content
            assert "content-type" not in {k.lower() for k in r.request.headers}
        assert r.status_code == 415, (path, content_type, r.text)
        assert "application/json" in r.json()["error"]


def test_an_oversized_body_gets_413_before_it_is_parsed(client):
    huge = b'{"user_id": "' + b"x" * 1_100_000 + b'"}'
    r = client.post("/recommend", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():                    # no Content-Length: counted as it streams in
        yield b'{"events": ['
        for _ in range(2000):
            yield b'{"user_id": "' + b"y" * 600 + b'", "item_id": "c1", "type": "view"},'
        yield b"]}"

    before = _count(client, "events")
    r = client.post("/feedback", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and _count(client, "events") == before


@pytest.mark.parametrize("bad, field", [
    ({"ts": 10**30}, "events.0.ts"), ({"ts": TS_MIN - 1}, "events.0.ts"),
    ({"ts": int(time.time()) + 3 * 86400}, "events.0.ts"), ({"ts": -5}, "events.0.ts"),
])
def test_implausible_times_are_refused_naming_the_field(client, bad, field):
    before = _count(client, "events")
    event = {"user_id": "u1", "item_id": "c1", "type": "view", **bad}
    r = client.post("/feedback", json={"events": [event]})
    assert r.status_code == 400 and r.json()["error"].startswith(f"{field}:")
    assert _count(client, "events") == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_values_are_refused(client, literal):
    before = _count(client, "events")
    raw = '{"events": [{"user_id": "u1", "item_id": "c1", "type": "pay", "value": %s}]}' % literal
    r = client.post("/feedback", content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("events.0.value:")
    assert _count(client, "events") == before


@pytest.mark.parametrize("path, body, field", [
    ("/recommend", {"user_id": "u1", "kind": ["content"]}, "kind"),
    ("/feedback", {"events": [{"user_id": "u1", "item_id": "c1", "type": "view"}], "dry_run": True}, "dry_run"),
    ("/settings", {"user_id": "u1", "opt_out": True}, "opt_out"),
])
def test_unknown_top_level_fields_are_refused(client, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code == 400 and r.json()["error"].startswith(f"{field}:")


def test_repeated_kinds_are_refused(client):
    r = client.post("/recommend", json={"user_id": "u1", "kinds": ["content", "content"]})
    assert r.status_code == 400 and r.json()["error"].startswith("kinds:") and "more than once" in r.json()["error"]


def test_reading_settings_creates_no_row(client):
    for i in range(5):
        body = client.post("/settings", json={"user_id": f"ghost-{i}"}).json()
        assert body == {"user_id": f"ghost-{i}", "commercial_opt_out": False, "mute": []}
    assert _count(client, "settings", "user_id LIKE 'ghost-%'") == 0
    assert _count(client, "mutes", "user_id LIKE 'ghost-%'") == 0


def test_the_mute_list_has_a_total_cap(client):
    user = "muter"
    first = [f"acct-{i}" for i in range(MAX_MUTES_TOTAL)]
    assert len(client.post("/settings", json={"user_id": user, "mute": first}).json()["mute"]) == MAX_MUTES_TOTAL
    r = client.post("/settings", json={"user_id": user, "mute": ["one-more"], "commercial_opt_out": True})
    assert r.status_code == 400 and r.json()["error"].startswith("mute:") and str(MAX_MUTES_TOTAL) in r.json()["error"]
    after = client.post("/settings", json={"user_id": user}).json()
    assert len(after["mute"]) == MAX_MUTES_TOTAL and after["commercial_opt_out"] is False    # nothing changed
    assert client.post("/settings", json={"user_id": user, "unmute": first}).json()["mute"] == []


def test_a_locked_event_log_answers_503_and_loses_nothing(client):
    events = [{"user_id": "u9", "item_id": "c1", "type": "click", "event_id": f"lock-{i}"} for i in range(3)]
    before = _count(client, "events")
    holder = sqlite3.connect(client.events_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = client.post("/feedback", json={"events": events})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "retry" in r.json()["error"]
        r = client.post("/settings", json={"user_id": "u9", "commercial_opt_out": True})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _count(client, "events") == before
    assert client.post("/feedback", json={"events": events}).json() == {"accepted": 3, "duplicates": 0}


def test_a_full_event_log_refuses_the_batch_whole(tmp_path):
    from guanxi.serving.events import SQLiteEventStore, StoreUnavailable

    store = SQLiteEventStore(tmp_path / "e.db")
    store.append([{"user_id": "u", "item_id": "i", "type": "view", "event_id": "first"}])
    store._conn().execute("PRAGMA max_page_count = 8")        # the disk is full from here on
    batch = [{"user_id": "u", "item_id": "i" * 200, "type": "view", "event_id": f"e{i}"} for i in range(500)]
    with pytest.raises(StoreUnavailable, match="full"):
        store.append(batch)
    assert store.max_seq() == 1 and len(store.events_since(0)) == 1


def test_concurrency_limit_sheds_load_with_503(registry):
    import asyncio

    from guanxi.serving.guard import GuardMiddleware
    from guanxi.serving.settings import ServeSettings

    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = GuardMiddleware(slow_app, ServeSettings(max_concurrency=2))
    sent: list[dict] = []

    async def call():
        scope = {"type": "http", "path": "/recommend", "method": "POST", "client": ("127.0.0.1", 5000),
                 "headers": [(b"content-type", b"application/json")]}
        messages = [{"type": "http.request", "body": b'{"user_id": "u1"}', "more_body": False}]

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                sent.append(message)
        await guard(scope, receive, send)

    async def main():
        first = [asyncio.create_task(call()) for _ in range(2)]
        await asyncio.sleep(0.05)
        await call()                                   # the third, while two are in flight
        release.set()
        await asyncio.gather(*first)

    asyncio.run(main())
    statuses = [m["status"] for m in sent]
    assert statuses[0] == 503 and sorted(statuses[1:]) == [200, 200]
    assert (b"retry-after", b"1") in sent[0]["headers"]
    assert guard.in_flight == 0
