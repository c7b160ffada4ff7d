"""Beyond one machine: a real ``mlflow server`` (SQLite backend, served artifact root), a real
PostgreSQL event log, and two ``guanxi serve`` replicas on different ports that must agree on
feedback, mutes, frequency caps and the champion."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from guanxi.app.cli import main
from guanxi.serving.event_stores import open_event_store
from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready
from tests.mlflow_server import TrackingServer
from tests.serving.http_post import post_json as _post

pytestmark = pytest.mark.slow
POLL_SECONDS = 2


@pytest.fixture(scope="module")
def tracking(tiny_world_dir, tmp_path_factory):
    """A tracking server holding v1 (trained by ``guanxi train --register`` through it) @champion
    and v2 (a hand-made bundle logged through it)."""
    import mlflow

    from guanxi.registry import log_bundle_model, register_candidate, use_tracking
    from tests.handmade import handmade_bundle

    root = tmp_path_factory.mktemp("tracking")
    server = TrackingServer(root / "server")
    try:
        assert main(["train", "--data", str(tiny_world_dir), "--set", "max_epochs=2", "--no-progress",
                     "--register", "--tracking-uri", server.url, "--events-db", str(root / "events.db")]) == 0
        assert main(["promote", "1", "--tracking-uri", server.url, "--events-db", str(root / "events.db")]) == 0
        use_tracking(server.url)
        mlflow.set_experiment("handmade")
        with mlflow.start_run() as run:
            register_candidate(log_bundle_model(handmade_bundle(tiny_world_dir, root / "b24", 24)), run.info.run_id)
        yield server
    finally:
        server.stop()


def test_training_and_registry_moves_go_through_the_tracking_server(tracking, tmp_path, capsys):
    from guanxi.registry import alias_version, download_bundle, use_tracking

    use_tracking(tracking.url)
    assert alias_version("champion") == "1"
    stored = {p.name for p in tracking.artifacts.rglob("*") if p.is_file()}
    assert {"state_dict.pt", "idmap.json", "items.parquet", "MLmodel"} <= stored    # in the server's root
    assert (download_bundle("models:/guanxi/2", tmp_path / "v2", tracking.url) / "idmap.json").is_file()
    capsys.readouterr()
    assert main(["status", "--tracking-uri", tracking.url, "--events-db", str(tmp_path / "none.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"]["version"] == "1"


def _slate(port: int, user: str, k: int = 5) -> list[str]:
    status, body = _post(port, "/recommend", {"user_id": user, "k": k})
    assert status == 200, body
    return [item["item_id"] for item in body["items"]]


def test_two_replicas_one_truth(tracking, pg_cluster, tmp_path):
    events_url = pg_cluster.new_database()
    env = server_env(tracking_uri=tracking.url, events_db=events_url, workers=1, poll_seconds=POLL_SECONDS)
    ports = [free_port(), free_port()]
    procs = [start_server("127.0.0.1", p, env, log=tmp_path / f"replica-{i}.log", cwd=tmp_path)
             for i, p in enumerate(ports)]
    a, b = ports
    try:
        for proc, port in zip(procs, ports):
            wait_ready(proc, "127.0.0.1", port, timeout=180)

        # feedback acknowledged by either is stored once and visible to the other's log and to retraining
        event = {"user_id": "u1", "item_id": "c1", "type": "pay", "value": 3.0, "event_id": "rep-1"}
        assert _post(a, "/feedback", {"events": [event]}) == (200, {"accepted": 1, "duplicates": 0})
        assert _post(b, "/feedback", {"events": [event]}) == (200, {"accepted": 1, "duplicates": 1})
        store = open_event_store(events_url, create=False)
        assert store.events_since(0)["event_id"].tolist() == ["rep-1"]

        # a mute set through one replica is honoured by the other on the next request
        top = _slate(b, "u2")[0]
        assert _post(a, "/settings", {"user_id": "u2", "mute": [top]})[0] == 200
        assert top not in _slate(b, "u2", k=20)

        # the frequency cap (3 within 24 h) counts impressions served by both
        shown: Counter = Counter()
        for i in range(8):
            shown.update(_slate(ports[i % 2], "u3"))
            time.sleep(0.3)                   # the impression log commits every 50 ms
        assert max(shown.values()) == 3
        assert sum(store.impression_counts("u3", 0).values()) == sum(shown.values())

        # promotion moves both replicas within one poll interval, with no failed request
        failures: list = []
        seen: dict[int, list[tuple[float, str]]] = {a: [], b: []}
        stop = threading.Event()

        def hammer(port: int) -> None:
            i = 0
            while not stop.is_set():
                code, out = _post(port, "/recommend", {"user_id": f"u{i % 300}", "k": 10})
                if code != 200:
                    failures.append((port, code, out))
                else:
                    seen[port].append((time.monotonic(), out["model_version"]))
                i += 1

        threads = [threading.Thread(target=hammer, args=(p,)) for p in ports]
        for t in threads:
            t.start()
        time.sleep(1.0)
        promoted_at = time.monotonic()
        assert main(["promote", "2", "--tracking-uri", tracking.url, "--events-db", events_url]) == 0
        time.sleep(POLL_SECONDS + 6)
        stop.set()
        for t in threads:
            t.join()
        assert not failures
        for port in ports:
            first = next(t for t, v in seen[port] if v == "2")
            assert first - promoted_at < POLL_SECONDS + 3, f"replica {port} moved after {first - promoted_at:.1f}s"
            assert {v for t, v in seen[port] if t > first} == {"2"}
    finally:
        for proc in procs:
            stop_server(proc)


def test_an_event_on_one_replica_changes_the_other_s_slate_within_the_refresh_bound(tracking, pg_cluster, tmp_path):
    """A payment acknowledged by replica A leaves the merchant out of the user's next slate on
    replica B within ``recent_refresh_seconds`` (2 s) and the time one request takes. The policy has
    no frequency cap here, so polling B cannot hide the item by itself."""
    events_url = pg_cluster.new_database()
    policy = tmp_path / "policy.yaml"
    policy.write_text("frequency_cap: 0\n")
    env = server_env(tracking_uri=tracking.url, events_db=events_url, workers=1, poll_seconds=POLL_SECONDS,
                     policy=str(policy))
    ports = [free_port(), free_port()]
    procs = [start_server("127.0.0.1", p, env, log=tmp_path / f"rt-{i}.log", cwd=tmp_path) for i, p in enumerate(ports)]
    a, b = ports
    try:
        for proc, port in zip(procs, ports):
            wait_ready(proc, "127.0.0.1", port, timeout=180)
        delays = []
        for n, user in enumerate(["u11", "u12", "u13", "u14", "u15"]):
            target = _slate(b, user, k=20)[0]
            sent = time.monotonic()
            assert _post(a, "/feedback", {"events": [{"user_id": user, "item_id": target, "type": "pay",
                                                       "event_id": f"rt-{n}"}]})[0] == 200
            while target in _slate(b, user, k=20):
                assert time.monotonic() - sent < 10, f"{target} still in {user}'s slate on the other replica"
                time.sleep(0.05)
            delays.append(time.monotonic() - sent)
        assert max(delays) < 2.0 + 1.5, delays
    finally:
        for proc in procs:
            stop_server(proc)
