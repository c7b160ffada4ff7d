"""Secure on every launch path: `bentoml serve` of the service module, bound to every interface
with no API token, answers this machine and refuses every other (the check is in the service, not
only in `guanxi serve`); `guanxi serve` stops its server when its terminal hangs up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready
from tests.serving.http_post import outward_address, post_json

pytestmark = pytest.mark.slow

PAY = {"events": [{"user_id": "u1", "item_id": "c1", "type": "pay", "event_id": "launch-1"}]}


def test_bentoml_serve_on_every_interface_without_a_token_answers_only_this_machine(registry, tmp_path):
    outward = outward_address()
    if outward is None:
        pytest.skip("this machine has no address besides loopback to send a request from")
    port = free_port()
    env = server_env(tracking_uri=registry["tracking_uri"], events_db=str(tmp_path / "events.db"), poll_seconds=0)
    env.pop("GUANXI_API_TOKEN", None)
    env.pop("GUANXI_INSECURE", None)
    proc = start_server("0.0.0.0", port, env, log=tmp_path / "server.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        for path, body in (("/feedback", PAY), ("/settings", {"user_id": "u1", "mute": ["c2"]}),
                           ("/recommend", {"user_id": "u1"})):
            status, answer = post_json(port, path, body, host=outward)
            assert status == 403 and "GUANXI_API_TOKEN" in answer["error"], (path, status, answer)
        assert post_json(port, "/feedback", PAY)[0] == 200                 # loopback is answered
    finally:
        stop_server(proc)
    assert "answering clients on this machine only" in (tmp_path / "server.log").read_text()


def test_guanxi_serve_stops_its_server_and_workers_on_sighup(registry, tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry["tracking_uri"], "BENTOML_DO_NOT_TRACK": "True"}
    cli = subprocess.Popen([sys.executable, "-m", "guanxi.app.cli", "serve", "--port", str(port),
                            "--events-db", str(tmp_path / "events.db"), "--workers", "2"],
                           env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and post_json_ok(port) is False:
            assert cli.poll() is None, cli.stdout.read()
            time.sleep(0.5)
        tree = psutil.Process(cli.pid).children(recursive=True)
        assert len(tree) >= 3                            # the server and its two workers
        cli.send_signal(signal.SIGHUP)                   # the terminal closed
        assert cli.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive, [p.pid for p in alive]
    finally:
        if cli.poll() is None:
            cli.kill()


def post_json_ok(port: int) -> bool:
    try:
        return post_json(port, "/recommend", {"user_id": "u1", "k": 1})[0] == 200
    except OSError:
        return False
