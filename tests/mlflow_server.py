"""A real ``mlflow server`` process for tests and benchmarks: a backend store (SQLite by default, or
any SQLAlchemy URL such as PostgreSQL's) and an artifact root it serves (``--serve-artifacts``), on a
free loopback port; :meth:`TrackingServer.stop` ends it."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from guanxi.serving.launch import free_port


class TrackingServer:
    """Start the server and wait for ``/health``.

    Args:
        root: folder for the SQLite backend (when ``backend_uri`` is None), the artifact root and the log.
        backend_uri: the backend store's URL (e.g. ``postgresql+psycopg://...``).

    Raises:
        RuntimeError: the server exited or was not healthy within 120 s (the log's tail attached).
    """

    def __init__(self, root: Path, backend_uri: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.artifacts = root / "artifacts"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "mlflow-server.log"
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", backend_uri or f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(self.artifacts), "--serve-artifacts", "--workers", "2"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                     start_new_session=True, cwd=root)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
