"""A real registry for the serving tests: a tiny world, two hand-made versions, v1 promoted.

The BentoML app is built once per session (``Service.to_asgi()`` works once per process).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.handmade import handmade_bundle


@pytest.fixture(scope="session")
def registry(tiny_world_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``{"dir", "tracking_uri", "world"}``: a real SQLite MLflow registry holding two hand-made
    bundles (:func:`handmade_bundle`, ranks 16 and 24) as guanxi versions 1 and 2, 1 @champion.
    Nothing is trained, so the quick tier can use it; ``guanxi train --register`` has its own tests."""
    import mlflow

    from guanxi.registry import log_bundle_model, promote, register_candidate, use_tracking

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    cwd = os.getcwd()
    os.chdir(root)  # MLflow puts its artifact folder in the working directory
    try:
        use_tracking(uri)
        mlflow.set_experiment("handmade")
        for rank in (16, 24):
            with mlflow.start_run() as run:
                bundle_dir = handmade_bundle(tiny_world_dir, root / f"bundle-{rank}", rank)
                register_candidate(log_bundle_model(bundle_dir), run.info.run_id)
        promote("1")
    finally:
        os.chdir(cwd)
    return {"dir": root, "tracking_uri": uri, "world": tiny_world_dir}


@pytest.fixture(scope="session")
def bundle(registry: dict):
    from guanxi.bundle import load_bundle
    from guanxi.registry import download_bundle

    return load_bundle(download_bundle("models:/guanxi/1", registry["dir"] / "v1",
                                       registry["tracking_uri"]))


API_TOKEN = "api-secret"


@pytest.fixture(scope="session")
def client(registry: dict, tmp_path_factory: pytest.TempPathFactory):
    """The service's ASGI app in process (one per test session), serving @champion, with an API
    token (sent by default: ``client.post(..., headers=...)`` overrides it) and a short lock wait."""
    from starlette.testclient import TestClient

    events = tmp_path_factory.mktemp("events") / "events.db"
    # /metrics reads its folder on every call: it stays set for the session
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(tmp_path_factory.mktemp("prometheus")))
    env = {"MLFLOW_TRACKING_URI": registry["tracking_uri"], "GUANXI_EVENTS_DB": str(events),
           "GUANXI_ADMIN_TOKEN": "admin-secret", "GUANXI_API_TOKEN": API_TOKEN, "GUANXI_POLL_SECONDS": "0",
           "GUANXI_EVENTS_BUSY_MS": "300", "GUANXI_MODEL_URI": "models:/guanxi@champion"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from guanxi.serving.service import Guanxi

        app = Guanxi.to_asgi()
        client = TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {API_TOKEN}"})
        client.__enter__()                    # the service reads its settings here ...
        client.get("/readyz")                 # ... and the middleware on the first request
    finally:
        # Real servers started later in the session must not inherit this app's settings.
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    client.events_db = events
    try:
        yield client
    finally:
        client.__exit__(None, None, None)
