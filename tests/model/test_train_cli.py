"""`guanxi train` end to end: metrics JSON contract, a real MLflow run and registry (SQLite)."""
import json

import mlflow
import numpy as np
import pytest

from guanxi.serving.recommender import Recommender
from guanxi.bundle import load_bundle
from guanxi.app.cli import main
from guanxi.registry import alias_version, download_bundle, use_tracking

CONTRACT_KEYS = {"recall_at_10", "ndcg_at_10", "precision_at_10", "recall_at_20", "ndcg_at_20",
                 "precision_at_20", "valid", "breakdowns", "train_seconds", "epochs", "model", "config"}


@pytest.mark.slow
def test_train_register_promote_and_load_the_champion(tiny_world_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "metrics.json"
    assert main(["train", "--data", str(tiny_world_dir), "--set", "max_epochs=2", "--no-progress",
                 "--metrics-json", str(out), "--register", "--tracking-uri", uri,
                 "--events-db", str(tmp_path / "events.db")]) == 0
    metrics = json.loads(out.read_text())
    assert CONTRACT_KEYS <= set(metrics)
    assert metrics["model"] == "guanxi" and metrics["epochs"] == 2
    assert {"sparsity", "cold_start", "kind"} <= set(metrics["breakdowns"])
    assert set(metrics["breakdowns"]["kind"]) == {"official_account", "merchant", "content"}

    use_tracking(uri)
    run = mlflow.get_run(metrics["mlflow"]["run_id"])
    assert run.data.params["model"] == "guanxi" and run.data.params["max_epochs"] == "2"
    assert run.data.metrics["recall_at_20"] == pytest.approx(metrics["recall_at_20"])
    assert "sparsity_lt10_recall_at_20" in run.data.metrics
    support = metrics["support"]                     # the world's learnt term and the weight chosen for it
    assert support["ties"] == "circles" and [g["scale"] for g in support["grid"]] == [1, 2, 4, 8, 16, 32]
    assert run.data.metrics["support_weight"] == pytest.approx(support["weight"])
    assert run.data.metrics["support_scale"] == support["scale"]
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "valid_recall_at_20")
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.json", "learning_curves.png", "breakdowns.png"} <= artifacts
    assert mlflow.get_experiment(run.info.experiment_id).name == "world-2000-s7"

    rebuilt = tmp_path / "rebuilt.json"
    assert main(["train", "--from-run", run.info.run_id, "--tracking-uri", uri, "--no-track",
                 "--no-progress", "--metrics-json", str(rebuilt)]) == 0
    again = json.loads(rebuilt.read_text())
    assert again["config"] == metrics["config"]
    assert again["recall_at_20"] == pytest.approx(metrics["recall_at_20"])

    assert alias_version("candidate") == "1" and alias_version("champion") is None
    assert main(["promote", "1", "--tracking-uri", uri]) == 0
    assert alias_version("champion") == "1"
    assert main(["promote", "99", "--tracking-uri", uri]) == 2

    bundle = load_bundle(download_bundle("models:/guanxi@champion", tmp_path / "dl"))
    rec = Recommender(bundle)
    user = bundle.idmap.user_ids[0]
    u = bundle.idmap.user_index([user])[0]
    seen = set(bundle.history.indices[bundle.history.indptr[u]:bundle.history.indptr[u + 1]])
    top = [bundle.idmap.item_index([i])[0] for i, _ in rec.top_items(user, 20)]
    assert len(top) == 20 and not seen & set(top)
    ranked, fallback = rec.rank("someone-new", 5)
    assert fallback == "popular" and len(ranked) == 5


def test_train_without_tracking_and_with_time_budget(tiny_world_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "m.json"
    assert main(["train", "--data", str(tiny_world_dir), "--model", "bpr", "--no-track",
                 "--no-progress", "--time-budget", "1", "--set", "max_epochs=1000", "--set", "patience=1000",
                 "--metrics-json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["stopped"] == "time_budget" and metrics["model"] == "bpr"
    assert not (tmp_path / "mlflow.db").exists()
    assert np.isfinite(metrics["recall_at_20"])


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--users", "400", "--time-budget", "3", "--no-serve", "--dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "promoted guanxi version 1 to @champion" in out
    assert "  u1" in out and (tmp_path / "demo" / "metrics.json").is_file()
