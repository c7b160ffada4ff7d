"""`guanxi retrain` and the operator commands on a real SQLite registry and event log."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from serving.events import SQLiteEventStore
from training.cli import main
from training.registry import alias_version, champion_history, use_tracking
from training.retrain import RetrainConfig, load_retrain_config, retrain
from training.retrain_data import build_retrain_dataset
from training.retrain_lock import RetrainBusy, RetrainLock

pytestmark = pytest.mark.slow


def _future_events(world, lo: float, hi: float) -> list[dict]:
    """A slice of the world's test period (its future) as feedback events."""
    test = world.dataset.test.sort_values("ts", kind="stable").reset_index(drop=True)
    part = test.iloc[int(lo * len(test)):int(hi * len(test))]
    return [{"user_id": r.user_id, "item_id": r.item_id, "type": r.type, "ts": int(r.ts),
             "value": None, "event_id": f"f-{i}"} for i, r in zip(part.index, part.itertuples())]


@pytest.fixture()
def ops(tiny_world, tiny_world_dir, tmp_path, monkeypatch):
    """A fresh registry with v1 @champion and an empty event log, in a scratch working directory."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["train", "--data", str(tiny_world_dir), "--set", "max_epochs=3", "--no-progress",
                 "--register", "--tracking-uri", uri]) == 0
    assert main(["promote", "1", "--tracking-uri", uri]) == 0
    return {"uri": uri, "db": tmp_path / "events.db", "world": tiny_world, "dir": tmp_path}


def _versions(uri: str) -> list[str]:
    use_tracking(uri)
    return sorted(str(v.version) for v in mlflow.MlflowClient().search_model_versions("name='guanxi'"))


def test_retrain_with_no_new_events_is_a_noop(ops, capsys):
    result = retrain(ops["db"], ops["uri"], progress=False)
    assert result["decision"] == "no-op" and result["new_events"] == 0
    assert _versions(ops["uri"]) == ["1"]
    assert "no-op" in capsys.readouterr().out


def test_retrain_rejects_by_margin_then_promotes_and_rolls_back(ops, tmp_path):
    store = SQLiteEventStore(ops["db"])
    events = _future_events(ops["world"], 0.0, 0.5)
    store.append(events)
    store.log_impressions(events[0]["user_id"], [events[0]["item_id"], "c1", "c2"], 1_700_000_000, "1")
    strict = RetrainConfig(margin=10.0, time_budget=60)
    result = retrain(ops["db"], ops["uri"], config=strict, overrides=["max_epochs=3"], progress=False)
    assert result["decision"] == "rejected" and alias_version("champion") == "1"
    assert alias_version("candidate") == result["version"] == "2"
    assert any("does not beat" in r for r in result["reasons"])
    client = mlflow.MlflowClient()
    run = client.get_run(result["run_id"])
    assert run.data.tags["decision"] == "reject" and "does not beat" in run.data.tags["reasons"]
    assert {"drift.json", "drift.png"} <= {a.path for a in client.list_artifacts(result["run_id"])}
    drift = json.loads(Path(client.download_artifacts(result["run_id"], "drift.json", str(tmp_path))).read_text())
    assert drift["drift"]["events"] == result["new_events"] > 0
    served = drift["drift"]["served"]
    assert served["impressions"] == 3 and served["by_model_version"] == {"1": 3}
    assert served["acted_on_share"] == pytest.approx(1 / 3)
    assert set(drift["drift"]["events_by_type"]) <= {"view", "read", "like", "comment", "share", "follow",
                                                     "click", "pay"}
    # the same events again: nothing new since that retrain
    assert retrain(ops["db"], ops["uri"], config=strict, progress=False)["decision"] == "no-op"

    store.append(_future_events(ops["world"], 0.5, 1.0))
    lenient = RetrainConfig(margin=-1.0, max_group_drop=1.0, time_budget=60)
    result = retrain(ops["db"], ops["uri"], config=lenient, overrides=["max_epochs=3"], progress=False)
    assert result["decision"] == "promoted" and alias_version("champion") == result["version"] == "3"
    assert result["policy_violations"] == 0
    assert champion_history() == ["1", "3"]

    assert main(["status", "--events-db", str(ops["db"]), "--tracking-uri", ops["uri"], "--json"]) == 0
    assert main(["rollback", "--tracking-uri", ops["uri"]]) == 0
    assert alias_version("champion") == "1"
    assert main(["rollback", "--tracking-uri", ops["uri"]]) == 2     # nothing earlier than v1


def test_status_reports_versions_watermark_and_pending(ops, capsys):
    SQLiteEventStore(ops["db"]).append(_future_events(ops["world"], 0.0, 0.1))
    capsys.readouterr()
    assert main(["status", "--events-db", str(ops["db"]), "--tracking-uri", ops["uri"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["champion"]["version"] == "1" and status["candidate"]["version"] == "1"
    assert status["data_watermark_seq"] == 0 and status["events_pending"] > 0
    assert "recall_at_20" in status["champion"]


def test_a_second_retrain_waits_for_the_lock(ops):
    SQLiteEventStore(ops["db"]).append(_future_events(ops["world"], 0.0, 0.2))
    with RetrainLock(Path(str(ops["db"]) + ".retrain.lock")):
        with pytest.raises(RetrainBusy, match="another retrain is running"):
            retrain(ops["db"], ops["uri"], progress=False)
        assert main(["retrain", "--events-db", str(ops["db"]), "--tracking-uri", ops["uri"],
                     "--no-progress"]) == 3
    assert _versions(ops["uri"]) == ["1"]


def test_retrain_killed_midway_leaves_the_registry_unchanged(ops):
    SQLiteEventStore(ops["db"]).append(_future_events(ops["world"], 0.0, 0.6))
    use_tracking(ops["uri"])
    before = (_versions(ops["uri"]), alias_version("champion"), alias_version("candidate"))
    cmd = [sys.executable, "-m", "training.cli", "retrain", "--events-db", str(ops["db"]),
           "--tracking-uri", ops["uri"], "--no-progress", "--set", "max_epochs=200", "--set", "patience=200"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ops["dir"])
    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "retrain 3/6" in line or not line:
            break
    time.sleep(2.0)                                   # well inside training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any("retrain 3/6" in line for line in seen), "".join(seen)
    assert (_versions(ops["uri"]), alias_version("champion"), alias_version("candidate")) == before
    # the kernel released the lock with the process: the next run goes through
    result = retrain(ops["db"], ops["uri"], config=RetrainConfig(time_budget=30), overrides=["max_epochs=2"],
                     progress=False)
    assert result["decision"] in ("promoted", "rejected") and result["version"] == "2"


def test_forget_removes_the_user_everywhere(ops, capsys):
    store = SQLiteEventStore(ops["db"])
    events = _future_events(ops["world"], 0.0, 0.3)
    gone = events[0]["user_id"]
    store.append(events)
    store.update_settings(gone, True, ["oa1"], [])
    assert main(["forget", gone, "--events-db", str(ops["db"])]) == 0
    assert "forgot" in capsys.readouterr().out
    assert gone not in set(store.events_since(0)["user_id"])
    assert store.settings(gone).mute == () and store.forgotten_users() == {gone}
    ds, holdout, known = build_retrain_dataset(ops["world"].dataset, store.events_since(0),
                                               store.forgotten_users(), 0.2)
    for table in (ds.users, ds.train, holdout, known):
        assert gone not in set(table["user_id"].astype(str))
    assert gone not in set(ds.ties["friend_id"].astype(str)) | set(ds.ties["user_id"].astype(str))


def test_retrain_data_holds_out_the_newest_events_and_admits_new_ids(ops):
    events = _future_events(ops["world"], 0.0, 0.5)
    events += [{"user_id": "brand-new-user", "item_id": "brand-new-item", "type": "click",
                "ts": 4_000_000_000, "value": None, "event_id": "new-1"}]
    store = SQLiteEventStore(ops["db"])
    store.append(events)
    ds, holdout, known = build_retrain_dataset(ops["world"].dataset, store.events_since(0), set(), 0.2)
    assert holdout["ts"].min() >= known["ts"].max()           # holdout is the newest slice
    assert "brand-new-user" in set(ds.users["user_id"]) and "brand-new-item" in set(ds.items["item_id"])
    pairs = set(zip(known["user_id"], known["item_id"]))
    assert not any((u, i) in pairs for u, i in zip(holdout["user_id"], holdout["item_id"]))


def test_retrain_config_rejects_unknown_keys(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("margn: 0.1\n")
    with pytest.raises(ValueError, match="unknown retrain key 'margn'"):
        load_retrain_config(p)
    assert load_retrain_config().holdout_fraction == 0.2
