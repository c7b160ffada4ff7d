"""A real `guanxi serve` from outside: it refuses to listen open beyond this machine, stops with
every process it started on SIGTERM, and forgets a user over HTTP within one poll interval."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import psutil
import pytest

from guanxi.serving.launch import check_exposure, free_port, server_env, start_server, stop_server, wait_ready
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recommender import Recommender
from guanxi.app.cli import main
from tests.serving.http_post import post_json as _post

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("host, token, insecure, refused", [
    ("0.0.0.0", None, False, True), ("10.1.2.3", None, False, True), ("my-host", None, False, True),
    ("0.0.0.0", "s3cret", False, False), ("0.0.0.0", None, True, False),
    ("127.0.0.1", None, False, False), ("localhost", None, False, False), ("::1", None, False, False),
])
def test_serve_refuses_an_open_public_host(host, token, insecure, refused):
    env = {"GUANXI_API_TOKEN": token} if token else {}
    if refused:
        with pytest.raises(ValueError, match="GUANXI_API_TOKEN"):
            check_exposure(host, env, insecure)
    else:
        check_exposure(host, env, insecure)


def test_guanxi_serve_on_a_public_host_exits_with_one_line(registry, capsys, monkeypatch):
    monkeypatch.delenv("GUANXI_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--tracking-uri", registry["tracking_uri"]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GUANXI_API_TOKEN" in err and "--insecure" in err


def test_sigterm_stops_guanxi_serve_and_every_process_it_started(registry, tmp_path):
    port = free_port()
    env = dict(os.environ, GUANXI_API_TOKEN="tok", BENTOML_DO_NOT_TRACK="True")
    cmd = [sys.executable, "-m", "guanxi.app.cli", "serve", "--port", str(port), "--workers", "2",
           "--tracking-uri", registry["tracking_uri"], "--events-db", str(tmp_path / "events.db")]
    proc = subprocess.Popen(cmd, env=env, cwd=registry["dir"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        started = psutil.Process(proc.pid).children(recursive=True)
        assert len(started) >= 3                          # the BentoML server and its two workers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert resp.status == 200                     # open, like health and OpenAPI
        assert _post(port, "/recommend", {"user_id": "u1"})[0] == 401
        assert _post(port, "/recommend", {"user_id": "u1"}, token="tok")[0] == 200
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:                               # requests in flight while it stops
            while not stop.is_set():
                try:
                    statuses.append(_post(port, "/recommend", {"user_id": "u2", "k": 5}, token="tok")[0])
                except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                    pass
        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stop.set()
        thread.join()
        assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
        assert not _listening(port)
        _, alive = psutil.wait_procs(started, timeout=10)
        assert not alive, [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _witness(rec: Recommender, users: np.ndarray) -> tuple[str, str, str]:
    """(gone, friend, item): ``friend`` is served ``item`` with ``gone`` among the contacts counted."""
    h, circles = rec.bundle.history, rec.bundle.circles
    for friend in users:
        _, slate = rec.recommend(friend, 50, PolicyConfig())
        mine = circles[circles["user_id"].astype(str) == friend]
        for s in slate:
            if not s.contacts_engaged:
                continue
            for contact in mine["friend_id"].astype(str):
                v = rec.idmap.user_index([contact])[0]
                if s.item_idx in set(h.indices[h.indptr[v]:h.indptr[v + 1]].tolist()) and \
                        h.indptr[v + 1] - h.indptr[v] > 3:
                    return contact, friend, str(rec.item_ids[s.item_idx])
    raise AssertionError("no witness in the tiny world")


def test_forget_over_http_within_one_poll_interval(registry, bundle, tmp_path):
    rec = Recommender(bundle)
    gone, friend, item = _witness(rec, bundle.idmap.user_ids.astype(str)[:300])
    db = tmp_path / "events.db"
    port = free_port()
    proc = start_server("127.0.0.1", port, server_env(tracking_uri=registry["tracking_uri"], events_db=str(db),
                                                      poll_seconds=1), log=tmp_path / "server.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        status, mine = _post(port, "/recommend", {"user_id": gone, "k": 10})
        assert status == 200 and mine["fallback"] is None
        counted = {i["item_id"]: i["reason"]["contacts_engaged"]
                   for i in _post(port, "/recommend", {"user_id": friend, "k": 50})[1]["items"]}
        assert counted.get(item, 0) >= 1
        assert _post(port, "/feedback", {"events": [{"user_id": gone, "item_id": item, "type": "like"}]})[0] == 200
        assert main(["forget", gone, "--events-db", str(db)]) == 0
        time.sleep(2.5)                                   # one poll interval (1 s), with room
        with sqlite3.connect(db) as conn:
            for table in ("events", "impression_slates"):
                assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (gone,)).fetchone()[0] == 0
        status, after = _post(port, "/recommend", {"user_id": gone, "k": 10})
        assert status == 200 and after["fallback"] == "popular"          # nothing from their history
        assert all(i["reason"]["contacts_engaged"] == 0 for i in after["items"])
        time.sleep(0.5)                                   # past the impression log's flush
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM impression_slates WHERE user_id = ?", (gone,)).fetchone()[0] == 0
        contacts = bundle.circles[bundle.circles["user_id"].astype(str) == friend]["friend_id"].astype(str)
        others = [rec.idmap.user_index([c])[0] for c in contacts if c != gone]
        h = bundle.history
        for entry in _post(port, "/recommend", {"user_id": friend, "k": 50})[1]["items"]:
            i = rec.item_index([entry["item_id"]])[0]
            want = sum(i in set(h.indices[h.indptr[v]:h.indptr[v + 1]].tolist()) for v in others)
            assert entry["reason"]["contacts_engaged"] == want, entry    # the forgotten contact no longer counts
    finally:
        stop_server(proc)
