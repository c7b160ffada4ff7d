"""A real `bentoml serve` process on a free port: HTTP calls, Prometheus metrics, a champion move
under load with no failed request in either worker, and `guanxi demo` serving what it trained."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psutil
import pytest

from guanxi.serving.launch import free_port, kill_server, server_env, start_server, stop_server, wait_ready
from guanxi.app.cli import main
from tests.serving.http_post import post_json as _post

pytestmark = pytest.mark.slow


def test_bentoml_serve_answers_and_follows_the_champion(registry, tmp_path):
    port = free_port()
    env = server_env(tracking_uri=registry["tracking_uri"], events_db=str(tmp_path / "events.db"),
                     workers=2, poll_seconds=1)
    proc = start_server("127.0.0.1", port, env, log=tmp_path / "server.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        status, body = _post(port, "/recommend", {"user_id": "u1", "k": 5})
        assert status == 200 and body["model_version"] == "1" and len(body["items"]) == 5
        assert _post(port, "/recommend", {"user_id": "u1", "k": 0})[0] == 400
        status, body = _post(port, "/feedback", {"events": [
            {"user_id": "u1", "item_id": "c1", "type": "pay", "value": 12.5, "event_id": "real-1"}]})
        assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert b"bentoml_service_request_total" in resp.read()

        failures: list = []
        versions: list[str] = []
        stop = threading.Event()

        def hammer() -> None:
            i = 0
            while not stop.is_set():
                code, out = _post(port, "/recommend", {"user_id": f"u{i % 500}", "k": 10})
                if code != 200:
                    failures.append((code, out))
                else:
                    versions.append(out["model_version"])
                i += 1

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        assert main(["promote", "2", "--tracking-uri", registry["tracking_uri"],
                     "--events-db", str(registry["dir"] / "events.db")]) == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "2" not in versions:
            time.sleep(0.2)
        time.sleep(3.0)                       # both workers have polled at least twice since
        n = len(versions)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        assert not failures
        assert "2" in versions and set(versions[n:]) == {"2"} and len(versions) > n
    finally:
        main(["promote", "1", "--tracking-uri", registry["tracking_uri"],
                     "--events-db", str(registry["dir"] / "events.db")])
        stop_server(proc)
    assert proc.returncode is not None


def test_every_acknowledged_event_survives_a_killed_server(registry, tmp_path):
    import sqlite3

    port = free_port()
    db = tmp_path / "events.db"
    env = server_env(tracking_uri=registry["tracking_uri"], events_db=str(db), workers=1, poll_seconds=0)
    proc = start_server("127.0.0.1", port, env, log=tmp_path / "server.log")
    acked: list[str] = []
    stop = threading.Event()

    def send() -> None:
        batch_no = 0
        while not stop.is_set():
            ids = [f"kill-{batch_no}-{i}" for i in range(50)]
            body = {"events": [{"user_id": f"u{i}", "item_id": "c1", "type": "click", "event_id": e}
                               for i, e in enumerate(ids)]}
            try:
                code, out = _post(port, "/feedback", body)
            except OSError:
                return                                  # the server is gone
            if code == 200 and out["accepted"] == 50:
                acked.extend(ids)
            batch_no += 1

    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(3.0)
        kill_server(proc)                               # mid-stream, no chance to clean up
        stop.set()
        sender.join()
    finally:
        stop_server(proc)
    assert len(acked) >= 50
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT event_id FROM events")}
    assert set(acked) <= stored


def test_demo_serves_the_champion_until_interrupted(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "guanxi.app.cli", "demo", "--users", "400", "--time-budget", "3",
           "--dir", str(tmp_path / "demo"), "--port", str(port)]
    # Started as a terminal starts it: Ctrl-C (SIGINT) at its default even when the test run itself
    # was started in the background, where the shell leaves SIGINT ignored for every child.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "BENTOML_DO_NOT_TRACK": "True"}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ready."):
                break
        assert lines and lines[-1].startswith("ready."), "".join(lines[-30:])
        curl = proc.stdout.readline().strip()
        assert curl.startswith("curl ") and f":{port}/recommend" in curl
        out = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30).stdout
        body = json.loads(out)
        assert body["model_version"] == "1" and len(body["items"]) == 5
    finally:
        try:
            server = psutil.Process(proc.pid).children(recursive=True)  # its server and workers
        except psutil.NoSuchProcess:
            server = []
        os.killpg(proc.pid, signal.SIGINT)
        try:
            tail = proc.communicate(timeout=60)[0]          # keeps draining the pipe while it stops
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            tail = proc.communicate()[0]
        _, left = psutil.wait_procs(server, timeout=10)
        for leftover in left:
            leftover.kill()
    assert proc.returncode == 0, tail[-3000:]
    assert not left, f"the demo left {len(left)} server processes running"
