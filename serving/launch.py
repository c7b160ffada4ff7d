"""Start the BentoML server as a child process (``guanxi serve``, ``make demo``, tests, benchmarks).

The service reads its settings from the environment (:mod:`guanxi.serving.settings`); this module turns
flags into that environment, checks the model resolves before anything starts, runs
``bentoml serve guanxi.serving.service:Guanxi`` and waits until ``/readyz`` answers.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

SERVICE = "guanxi.serving.service:Guanxi"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(model_uri: str | None = None, tracking_uri: str | None = None, events_db: str | None = None,
               policy: str | None = None, workers: int | None = None, poll_seconds: float | None = None,
               base: dict | None = None) -> dict[str, str]:
    """The child's environment: ``base`` (default ``os.environ``) plus the settings given."""
    env = dict(os.environ if base is None else base)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    # Scoring is one matrix-vector product per request, bound by memory bandwidth: one worker uses
    # every core for it; several workers share the cores rather than fight over them.
    n_workers = int(workers or env.get("GUANXI_WORKERS") or 1)
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    for key, value in (("GUANXI_MODEL_URI", model_uri), ("MLFLOW_TRACKING_URI", tracking_uri),
                       ("GUANXI_EVENTS_DB", events_db), ("GUANXI_POLICY", policy),
                       ("GUANXI_WORKERS", workers), ("GUANXI_POLL_SECONDS", poll_seconds)):
        if value is None:
            continue
        if key == "GUANXI_EVENTS_DB":
            from guanxi.serving.event_stores import parse_event_log

            env[key] = parse_event_log(str(value)).resolved()    # a path made absolute, a URL kept
        else:
            env[key] = str(Path(value).resolve()) if key == "GUANXI_POLICY" else str(value)
    return env


def check_model(env: dict[str, str]) -> str:
    """Resolve the model the server would load (fail before starting it).

    Raises:
        ValueError: the URI does not resolve (no champion yet, unknown version, missing dir).
    """
    from guanxi.serving.champion import resolve_version
    from guanxi.serving.settings import DEFAULT_MODEL_URI
    from guanxi.registry import use_tracking

    uri = env.get("GUANXI_MODEL_URI") or DEFAULT_MODEL_URI
    if Path(uri).is_dir():
        return uri
    use_tracking(env.get("MLFLOW_TRACKING_URI"))
    try:
        version = resolve_version(uri)
    except ValueError as exc:
        raise ValueError(f"{exc}. Train with `guanxi train --register` and `guanxi promote VERSION` first, "
                         "or set --model-uri") from exc
    return f"{uri} (version {version})"


def check_events(env: dict[str, str]) -> str:
    """Open (and if new, create) the event log the server would use, so that a value it cannot use
    fails here, naming it, instead of in a worker. Returns the log as it may be printed.

    Raises:
        ValueError: an unsupported or unreachable log.
    """
    from guanxi.serving.event_stores import open_event_store, parse_event_log

    value = env.get("GUANXI_EVENTS_DB") or "events.db"
    try:
        store = open_event_store(value)
    except ValueError as exc:
        raise ValueError(f"GUANXI_EVENTS_DB: {exc}") from None
    store.close()
    return str(parse_event_log(value))


def start_server(host: str, port: int, env: dict[str, str], log: Path | None = None,
                 service: str = SERVICE, cwd: str | Path | None = None) -> subprocess.Popen:
    """Start ``bentoml serve SERVICE`` (returns at once; see :func:`wait_ready`)."""
    cmd = [sys.executable, "-m", "bentoml", "serve", service, "--host", host, "--port", str(port)]
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 - the child owns it
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                            start_new_session=True, cwd=cwd)


def wait_ready(proc: subprocess.Popen, host: str, port: int, timeout: float = 120.0) -> None:
    """Block until ``/readyz`` answers 200.

    Raises:
        RuntimeError: the server exited or did not get ready within ``timeout`` seconds.
    """
    url = f"http://{host}:{port}/readyz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server was not ready at {url} within {timeout:.0f}s")


def _server_tree(proc: subprocess.Popen) -> list[psutil.Process]:
    """The server's descendants (its workers), found while the server still lives: BentoML starts
    each worker in a session of its own, so signalling the server's process group misses them."""
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it and its workers if they linger.

    The server stops its own workers on SIGTERM. The workers are found before any signal, so a
    worker still alive 5 s after the server has gone is killed and none outlives this call (a
    server already dead when called has lost track of its workers: use :func:`kill_server` to
    crash one on purpose).
    """
    workers = _server_tree(proc)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    _reap(workers, grace=5.0)


def _reap(workers: list[psutil.Process], grace: float) -> None:
    """Give ``workers`` ``grace`` seconds to exit, then SIGKILL and wait for any still alive."""
    _, alive = psutil.wait_procs(workers, timeout=grace)
    for worker in alive:
        try:
            worker.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def kill_server(proc: subprocess.Popen) -> None:
    """SIGKILL the server and every worker at once: a crash, with no chance to clean up."""
    workers = _server_tree(proc)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    _reap(workers, grace=0.0)


def curl_example(host: str, port: int, user_id: str = "u1") -> str:
    return (f"curl -s -X POST http://{host}:{port}/recommend -H 'Content-Type: application/json' "
            f"-d '{{\"user_id\": \"{user_id}\", \"k\": 5}}'")


def check_exposure(host: str, env: dict[str, str], insecure: bool) -> None:
    """Refuse to serve open beyond this machine: a host other than loopback needs
    ``GUANXI_API_TOKEN`` (or an explicit ``insecure``). The launcher's early, friendlier form of the
    rule every worker applies itself (:mod:`guanxi.serving.guard`: without a token, loopback
    clients only).

    Raises:
        ValueError: one line saying how to set the token.
    """
    if insecure or env.get("GUANXI_API_TOKEN") or env.get("GUANXI_INSECURE", "").lower() in ("1", "true", "yes"):
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--host {host} is reachable from other machines: set GUANXI_API_TOKEN=<secret> "
                         "(clients then send 'Authorization: Bearer <secret>'), or pass --insecure to serve it open")


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


def serve_foreground(host: str, port: int, env: dict[str, str], user_id: str = "u1") -> int:
    """Run the server until Ctrl-C, SIGTERM (what systemd, Docker and Kubernetes send) or SIGHUP
    (its terminal closed): each stops the server, which drains in-flight requests, and every worker
    it started (the server runs in a session of its own, so no signal reaches it unless passed
    on). Prints a working curl line once it is ready."""
    events = check_events(env)
    print(f"serving {check_model(env)} on http://{host}:{port} (events: "
          f"{events}, workers: {env.get('GUANXI_WORKERS', '1')})", flush=True)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    proc = start_server(host, port, env)
    try:
        wait_ready(proc, host, port)
        token = " -H 'Authorization: Bearer $GUANXI_API_TOKEN'" if env.get("GUANXI_API_TOKEN") else ""
        print(f"ready. Try:\n  {curl_example(host, port, user_id)}{token}\nCtrl-C stops the server.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        print("stopping the server", flush=True)
        return 0
    finally:
        stop_server(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
