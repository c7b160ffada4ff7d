"""`guanxi retrain` and the operator commands on a real SQLite registry and event log."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from guanxi.serving.events import SQLiteEventStore
from guanxi.app.cli import main
from guanxi.registry import alias_version, champion_history, use_tracking
from guanxi.app.holdout import evaluate_served
from guanxi.app.retrain import RetrainConfig, load_retrain_config, retrain
from guanxi.app.retrain_data import build_retrain_dataset
from guanxi.app.retrain_lock import RetrainBusy, RetrainLock

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
                 "--register", "--tracking-uri", uri, "--events-db", str(tmp_path / "events.db")]) == 0
    assert main(["promote", "1", "--tracking-uri", uri]) == 0        # ./events.db exists now
    return {"uri": uri, "db": tmp_path / "events.db", "world": tiny_world, "dir": tmp_path,
            "world_dir": tiny_world_dir}


def _versions(uri: str) -> list[str]:
    use_tracking(uri)
    return sorted(str(v.version) for v in mlflow.MlflowClient().search_model_versions("name='guanxi'"))


def test_retrain_with_no_new_events_is_a_noop(ops, capsys):
    SQLiteEventStore(ops["db"])
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
    judged = []
    result = retrain(ops["db"], ops["uri"], config=strict, overrides=["max_epochs=3"], progress=False,
                     on_judged=lambda *seen: judged.append(seen))
    assert result["decision"] == "rejected" and alias_version("champion") == "1"
    # the hook sees the two models and the holdout as the gate judged them
    (champion, candidate, holdout, known), = judged
    assert len(holdout) and len(known)
    for name, rec in (("champion", champion), ("candidate", candidate)):
        assert evaluate_served(rec, holdout, known)["recall_at_20"] == result["holdout"][name]["recall_at_20"]
    assert alias_version("candidate") == result["version"] == "2"
    assert any("does not beat" in r for r in result["reasons"])
    client = mlflow.MlflowClient()
    run = client.get_run(result["run_id"])
    assert run.data.tags["decision"] == "reject" and "does not beat" in run.data.tags["reasons"]
    # the candidate's support grid was chosen under the gate's own per-kind bound
    assert float(run.data.params["support_kind_guard"]) == strict.max_group_drop
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
    cmd = [sys.executable, "-m", "guanxi.app.cli", "retrain", "--events-db", str(ops["db"]),
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
    forget = store.forget_list()
    assert store.settings(gone).mute == () and forget.contains(gone) and len(forget) == 1
    with sqlite3.connect(ops["db"]) as conn:            # a salted hash is kept, never the id
        assert not any(gone in str(row) for table in ("forgotten", "meta")
                       for row in conn.execute(f"SELECT * FROM {table}"))
    rd = build_retrain_dataset(ops["world"].dataset, store.events_since(0), 0, forget, 0.2)
    for table in (rd.dataset.users, rd.dataset.train, rd.holdout, rd.known):
        assert gone not in set(table["user_id"].astype(str))
    assert gone not in set(rd.dataset.ties["friend_id"].astype(str)) | set(rd.dataset.ties["user_id"].astype(str))


def test_retrain_data_holds_out_the_newest_arrivals_and_admits_new_users(ops):
    events = _future_events(ops["world"], 0.0, 0.5)
    events.reverse()                                  # client clocks say nothing about arrival
    events += [{"user_id": "brand-new-user", "item_id": events[0]["item_id"], "type": "click",
                "ts": 1_000_000_000, "value": None, "event_id": "new-1"}]
    store = SQLiteEventStore(ops["db"])
    store.append(events)
    logged = store.events_since(0)
    rd = build_retrain_dataset(ops["world"].dataset, logged, 0, store.forget_list(), 0.2)
    newest = logged.iloc[int(len(logged) * 0.8):]
    assert set(rd.holdout["event_id"]) <= set(newest["event_id"]) and "new-1" in set(rd.holdout["event_id"])
    assert "brand-new-user" in set(rd.dataset.users["user_id"])
    pairs = set(zip(rd.known["user_id"], rd.known["item_id"]))
    assert not any((u, i) in pairs for u, i in zip(rd.holdout["user_id"], rd.holdout["item_id"]))


def test_retrain_config_rejects_unknown_keys(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("margn: 0.1\n")
    with pytest.raises(ValueError, match="unknown retrain key 'margn'"):
        load_retrain_config(p)
    assert load_retrain_config().holdout_fraction == 0.2


def _pairs_of(bundle) -> set[tuple[str, str]]:
    h = bundle.history
    users, items = bundle.idmap.user_ids.astype(str), bundle.idmap.item_ids.astype(str)
    return {(users[u], items[i]) for u in range(len(users)) for i in h.indices[h.indptr[u]:h.indptr[u + 1]]}


def _bundle(uri: str, version: str, dst: Path):
    from guanxi.bundle import load_bundle
    from guanxi.registry import download_bundle

    return load_bundle(download_bundle(f"models:/guanxi/{version}", dst, uri))


def test_feedback_is_learnt_cumulatively_whatever_the_gate_decided(ops, tmp_path):
    store = SQLiteEventStore(ops["db"])
    first, second = _future_events(ops["world"], 0.0, 0.3), _future_events(ops["world"], 0.3, 0.6)
    store.append(first)
    rejected = retrain(ops["db"], ops["uri"], config=RetrainConfig(margin=10.0, time_budget=60),
                       overrides=["max_epochs=2"], progress=False)
    assert rejected["decision"] == "rejected"
    store.append(second)
    result = retrain(ops["db"], ops["uri"], config=RetrainConfig(margin=-1.0, max_group_drop=1.0, time_budget=60),
                     overrides=["max_epochs=2"], progress=False)
    # every event of the rejected batch, and all of the second but its holdout, was trained on
    assert result["feedback_events_trained"] == len(first) + int(len(second) * 0.8)
    served = _pairs_of(_bundle(ops["uri"], result["version"], tmp_path / "v"))
    for batch in (first, second):                     # both batches' items are consumed: never recommended back
        assert {(e["user_id"], e["item_id"]) for e in batch} <= served


def test_items_first_seen_in_feedback_wait_for_a_catalogue_update(ops, tmp_path):
    store = SQLiteEventStore(ops["db"])
    events = _future_events(ops["world"], 0.0, 0.3)
    mystery = [{"user_id": e["user_id"], "item_id": "mystery-shop", "type": "pay", "ts": e["ts"],
                "value": 9.5, "event_id": f"m-{i}"} for i, e in enumerate(events[:3])]
    store.append(events[: len(events) // 2] + mystery + events[len(events) // 2:])
    lenient = RetrainConfig(margin=-1.0, max_group_drop=1.0, time_budget=60)
    result = retrain(ops["db"], ops["uri"], config=lenient, overrides=["max_epochs=2"], progress=False)
    assert result["held_back_events"] == 3
    assert "mystery-shop" not in set(_bundle(ops["uri"], result["version"], tmp_path / "a").idmap.item_ids.astype(str))
    catalogue = tmp_path / "items.tsv"
    catalogue.write_text("item\tkind\tcommercial\nmystery-shop\tmerchant\ttrue\n")
    store.append(_future_events(ops["world"], 0.3, 0.4))
    result = retrain(ops["db"], ops["uri"], config=lenient, overrides=["max_epochs=2"], progress=False,
                     items=catalogue)
    assert result["held_back_events"] == 0 and result["decision"] == "promoted"
    items = _bundle(ops["uri"], result["version"], tmp_path / "b").items.set_index("item_id")
    assert items.loc["mystery-shop", "kind"] == "merchant" and bool(items.loc["mystery-shop", "commercial"])
    # the classification stays with the champion's catalogue: the next retrain needs no --items
    store.append(_future_events(ops["world"], 0.4, 0.5))
    result = retrain(ops["db"], ops["uri"], config=lenient, overrides=["max_epochs=2"], progress=False)
    assert result["held_back_events"] == 0
    bad = tmp_path / "bad.tsv"
    bad.write_text("item\tkind\nx\tshop\n")
    with pytest.raises(ValueError, match=r"bad.tsv, line 2, field 'kind'"):
        retrain(ops["db"], ops["uri"], config=lenient, progress=False, items=bad)


def test_retrain_replays_the_deployed_policy(ops, tmp_path, monkeypatch):
    SQLiteEventStore(ops["db"]).append(_future_events(ops["world"], 0.0, 0.3))
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_commercial_share: 0.1\nfrequency_cap: 1\n")
    monkeypatch.setenv("GUANXI_POLICY", str(policy))
    result = retrain(ops["db"], ops["uri"], config=RetrainConfig(time_budget=60), overrides=["max_epochs=2"],
                     progress=False)
    replayed = json.loads(mlflow.MlflowClient().get_run(result["run_id"]).data.tags["replayed_policy"])
    assert replayed["max_commercial_share"] == 0.1 and replayed["frequency_cap"] == 1
    policy.write_text("max_comercial_share: 0.1\n")
    SQLiteEventStore(ops["db"]).append(_future_events(ops["world"], 0.3, 0.4))
    with pytest.raises(ValueError, match="unknown policy key"):
        retrain(ops["db"], ops["uri"], progress=False)


def test_forget_reaches_every_version_and_cache(ops, tmp_path, capsys, monkeypatch):
    gone = "u5"
    assert gone in set(_bundle(ops["uri"], "1", tmp_path / "v1").idmap.user_ids.astype(str))
    missing = tmp_path / "missing.db"
    assert main(["forget", gone, "--events-db", str(missing)]) == 2 and not missing.exists()
    SQLiteEventStore(ops["db"])
    with RetrainLock(Path(str(ops["db"]) + ".retrain.lock")):
        assert main(["forget", gone, "--events-db", str(ops["db"])]) == 3
    monkeypatch.setenv("GUANXI_EVENTS_DB", str(ops["db"]))
    cache = tmp_path / "cache"
    monkeypatch.setenv("GUANXI_MODEL_CACHE", str(cache))
    from guanxi.serving.champion import load_served

    load_served("models:/guanxi/1", cache_dir=cache, tracking_uri=ops["uri"])     # a worker's cached copy
    assert main(["forget", gone]) == 0
    capsys.readouterr()
    assert main(["status", "--tracking-uri", ops["uri"], "--json"]) == 0
    held = json.loads(capsys.readouterr().out)["holding_forgotten"]
    mine = [c for c in held["cached"] if c["path"].startswith(str(cache))]    # (a machine may hold others)
    assert [v["version"] for v in held["versions"]] == ["1"] and len(mine) == 1
    assert main(["forget", "--purge-versions", "--tracking-uri", ops["uri"]]) == 2   # the champion holds them
    # no new events, a gate it cannot pass: erasure publishes and promotes the scrubbed version anyway
    result = retrain(ops["db"], ops["uri"], config=RetrainConfig(margin=10.0, time_budget=60),
                     overrides=["max_epochs=2"], progress=False)
    assert result["decision"] == "promoted" and result["erasure"] and alias_version("champion") == result["version"]
    assert mlflow.MlflowClient().get_run(result["run_id"]).data.tags["erasure"] == "1"
    assert gone not in set(_bundle(ops["uri"], result["version"], tmp_path / "v2").idmap.user_ids.astype(str))
    assert main(["forget", "--purge-versions", "--tracking-uri", ops["uri"]]) == 0
    v1 = mlflow.MlflowClient().get_model_version("guanxi", "1")
    assert "purged" in v1.tags and not list(cache.glob("*/bundle"))
    with pytest.raises(ValueError):
        _bundle(ops["uri"], "1", tmp_path / "again")
    assert main(["rollback", "--tracking-uri", ops["uri"]]) == 2 and alias_version("champion") == result["version"]
    assert main(["promote", "1", "--tracking-uri", ops["uri"]]) == 2
    capsys.readouterr()
    assert main(["status", "--tracking-uri", ops["uri"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["holding_forgotten"] == {"versions": [], "cached": [],
                                                                         "bentoml": [], "unreadable": []}
    # training on any data honours the forget list
    assert main(["train", "--data", str(ops["world_dir"]), "--set", "max_epochs=1", "--no-progress",
                 "--register", "--tracking-uri", ops["uri"]]) == 0
    assert "left out 1 users who asked to be forgotten" in capsys.readouterr().out
    latest = max(_versions(ops["uri"]), key=int)
    assert gone not in set(_bundle(ops["uri"], latest, tmp_path / "v3").idmap.user_ids.astype(str))


def test_retrain_reads_feedback_and_holds_its_lock_in_postgresql(ops, pg_cluster, capsys, monkeypatch):
    import guanxi.app.retrain
    import guanxi.serving.event_stores
    from guanxi.app.retrain_lock import retrain_lock_for
    from guanxi.serving.event_stores import open_event_store

    opened: list = []                    # every store the commands below open, to see each closed

    def spy(*args, **kwargs):
        store = open_event_store(*args, **kwargs)
        real_close, store.closed = store.close, False

        def close() -> None:
            store.closed = True
            real_close()
        store.close = close
        opened.append(store)
        return store
    monkeypatch.setattr(guanxi.app.retrain, "open_event_store", spy)
    monkeypatch.setattr(guanxi.serving.event_stores, "open_event_store", spy)

    url = pg_cluster.new_database()
    store = open_event_store(url)
    events = _future_events(ops["world"], 0.0, 0.5)
    store.append(events)
    with retrain_lock_for(url):                             # another scheduler, on another machine
        with pytest.raises(RetrainBusy, match="advisory lock"):
            retrain(url, ops["uri"], progress=False)
    lenient = RetrainConfig(margin=-1.0, max_group_drop=1.0, time_budget=60)
    result = retrain(url, ops["uri"], config=lenient, overrides=["max_epochs=3"], progress=False)
    assert result["decision"] == "promoted" and result["new_events"] == len(events)
    capsys.readouterr()
    assert main(["status", "--events-db", url, "--tracking-uri", ops["uri"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["data_watermark_seq"] == store.max_seq() and status["events_pending"] == 0
    user = events[0]["user_id"]
    assert main(["forget", user, "--events-db", url, "--tracking-uri", ops["uri"]]) == 0
    assert store.forget_list().contains(user)
    assert (store.events_since(0)["user_id"] == user).sum() == 0
    store.close()
    # retrain (twice), status and forget each closed the log they opened (a scheduler retrains
    # for days: an open pool a round would use up the server's connections)
    assert len(opened) >= 4 and all(s.closed for s in opened), [s.closed for s in opened]


def test_a_retrain_whose_postgres_lock_was_lost_publishes_nothing(ops, pg_cluster):
    import psycopg

    from guanxi.app.retrain_lock import RetrainLockLost
    from guanxi.serving.event_stores import open_event_store

    url = pg_cluster.new_database()
    open_event_store(url).append(_future_events(ops["world"], 0.0, 0.5))

    def drop_the_session(*_):                # the database restarted, or a reaper cut the idle session
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'guanxi-retrain'")

    before = _versions(ops["uri"])
    lenient = RetrainConfig(margin=-1.0, max_group_drop=1.0, time_budget=60)
    with pytest.raises(RetrainLockLost, match="nothing is registered"):
        retrain(url, ops["uri"], config=lenient, overrides=["max_epochs=2"], progress=False,
                on_judged=drop_the_session)
    assert _versions(ops["uri"]) == before and alias_version("champion") == "1"
