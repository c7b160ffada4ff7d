"""Erasure that stays erased: a purge finds every copy by what it holds (serving caches written
from another working directory or through another spelling of the tracking URI, a custom cache
root, the BentoML model store and its Bentos), fails loudly on what it cannot read, and nothing
publishes a version holding a forgotten user (promote and rollback check the forget list; train
--register refuses to run without one)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlflow
import pytest

from guanxi.app.cli import main
from guanxi.serving.event_stores import open_event_store
from tests.handmade import handmade_bundle

pytestmark = pytest.mark.slow

GONE = "u5"


@pytest.fixture
def registry(tiny_world_dir, tmp_path, monkeypatch):
    """A fresh registry with two hand-made versions (both hold ``GONE``), none @champion, and an
    event log in which ``GONE`` asked to be forgotten."""
    from guanxi.registry import log_bundle_model, register_candidate, use_tracking

    root = tmp_path / "registry"
    root.mkdir()
    monkeypatch.chdir(root)                      # MLflow puts its artifacts in the working directory
    uri = f"sqlite:///{root}/mlflow.db"
    use_tracking(uri)
    mlflow.set_experiment("erasure")
    for rank in (8, 12):
        with mlflow.start_run() as run:
            register_candidate(log_bundle_model(handmade_bundle(tiny_world_dir, root / f"b{rank}", rank)),
                               run.info.run_id)
    db = root / "events.db"
    store = open_event_store(db)
    store.forget(GONE)
    store.close()
    return {"root": root, "uri": uri, "db": db}


def test_purge_finds_every_copy_by_what_it_holds(registry, tmp_path, monkeypatch, capsys):
    import bentoml

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))       # this test's own default root
    from guanxi.app.bento_build import import_model
    from guanxi.serving.champion import load_served
    from guanxi.serving.model_cache import default_root

    # Workers cached v1 from one working directory, with the URI spelled relative to it ...
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(registry["root"])
    load_served("models:/guanxi/1", tracking_uri="sqlite:///mlflow.db")
    # ... and v2 in a cache root of their own (GUANXI_MODEL_CACHE, unset when the purge runs).
    custom = tmp_path / "custom-cache"
    load_served("models:/guanxi/2", cache_dir=custom, tracking_uri=registry["uri"])
    tag = import_model("models:/guanxi/1", registry["uri"])        # what `guanxi build` ships
    assert list(default_root().glob("*/v1-*/bundle")) and list(custom.glob("v2-*/bundle"))

    monkeypatch.chdir(elsewhere)                                   # the operator, somewhere else
    spelled = f"sqlite:////{str(registry['root']).lstrip('/')}/./mlflow.db"
    assert main(["forget", "--purge-versions", "--tracking-uri", spelled, "--events-db", str(registry["db"])]) == 0
    out = capsys.readouterr().out
    assert "purged 2 versions (v1, v2)" in out and "1 BentoML models or Bentos" in out
    assert not list(default_root().glob("*/v*/bundle")) and not list(custom.glob("v*/bundle"))
    with pytest.raises(bentoml.exceptions.NotFound):
        bentoml.models.get(tag)
    client = mlflow.MlflowClient(registry["uri"], registry["uri"])
    assert all("purged" in client.get_model_version("guanxi", v).tags for v in ("1", "2"))


def test_a_copy_that_cannot_be_read_fails_the_purge_loudly(registry, tmp_path, monkeypatch, capsys):
    from guanxi.serving.champion import load_served
    from guanxi.serving.model_cache import default_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_served("models:/guanxi/1", tracking_uri=registry["uri"])
    cached = next(default_root().glob("*/v1-*/bundle"))
    (cached / "idmap.json").write_text("{not json")                  # a damaged cache entry
    client = mlflow.MlflowClient(registry["uri"], registry["uri"])
    source = Path(client.get_model_version_download_uri("guanxi", "2").removeprefix("file://"))
    shutil.rmtree(source / "artifacts" / "bundle")                   # artifacts gone, version not tagged
    code = main(["forget", "--purge-versions", "--tracking-uri", registry["uri"], "--events-db", str(registry["db"])])
    err = capsys.readouterr().err
    assert code == 2 and "could not read 2 copies" in err and "registered v2" in err and "idmap.json" in err
    assert "purged" in client.get_model_version("guanxi", "1").tags      # what could be read was purged
    assert main(["status", "--tracking-uri", registry["uri"], "--events-db", str(registry["db"]), "--json"]) == 0
    held = json.loads(capsys.readouterr().out)["holding_forgotten"]
    assert len(held["unreadable"]) == 2


def test_promote_and_rollback_refuse_a_version_holding_a_forgotten_user(registry, tmp_path, monkeypatch, capsys):
    assert main(["promote", "1", "--tracking-uri", registry["uri"], "--events-db", str(registry["db"])]) == 2
    assert "holds 1 users who asked to be forgotten" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)                                      # no events.db here, none named
    monkeypatch.delenv("GUANXI_EVENTS_DB", raising=False)
    assert main(["promote", "1", "--tracking-uri", registry["uri"]]) == 2
    assert "no event log" in capsys.readouterr().err
    assert main(["rollback", "--tracking-uri", registry["uri"]]) == 2
    assert "no event log" in capsys.readouterr().err


def test_train_register_needs_the_forget_list(tiny_world_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GUANXI_EVENTS_DB", raising=False)
    argv = ["train", "--data", str(tiny_world_dir), "--set", "max_epochs=1", "--no-progress", "--register",
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    assert main(argv) == 2
    assert "no event log" in capsys.readouterr().err and not (tmp_path / "mlflow.db").exists()
    db = tmp_path / "log" / "events.db"
    store = open_event_store(db)
    store.forget(GONE)
    store.close()
    monkeypatch.setenv("GUANXI_EVENTS_DB", str(db))                  # told where it is
    assert main(argv) == 0
    assert "left out 1 users who asked to be forgotten" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "mlflow.db")
