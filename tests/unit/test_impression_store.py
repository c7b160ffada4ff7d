"""The impression log in the SQLite event store: one row per slate on disk, one row per item to
every reader (frequency counts, retraining, pruning, forgetting), and old per-item logs migrated."""
from __future__ import annotations

import sqlite3

from guanxi.serving.events import SQLiteEventStore


def test_counts_survive_ids_that_look_like_json(tmp_path):
    store = SQLiteEventStore(tmp_path / "e.db")
    odd = ['a,b', '["x"]', 'q"uote', 'back\\', '商户 ü', ']', '[', '', ',']
    store.log_impressions_many([("u1", odd, 100, "1"), ("u1", odd[:3], 101, "1"), ("u1", ["a"], 102, "1")])
    want = {i: 1 for i in odd}
    for i in odd[:3]:
        want[i] += 1
    want["a"] = 1
    assert store.impression_counts("u1", 0) == want
    assert store.impression_counts("u1", 101) == {"a,b": 1, '["x"]': 1, 'q"uote': 1, "a": 1}


def test_slates_read_back_per_item(tmp_path):
    store = SQLiteEventStore(tmp_path / "e.db")
    store.log_impressions_many([("u1", ["a", "b"], 100, "1"), ("u2", ["a"], 150, "1"), ("u1", ["a"], 200, "2")])
    store.log_impressions("u1", [], 250, "2")                                  # an empty slate logs nothing
    assert store.impression_counts("u1", 0) == {"a": 2, "b": 1}
    assert store.impression_counts("u1", 150) == {"a": 1}
    assert store.impression_counts("nobody", 0) == {}
    rows = store.impressions_since(0)
    assert rows[["user_id", "item_id", "ts", "model_version"]].values.tolist() == [
        ["u1", "a", 100, "1"], ["u1", "b", 100, "1"], ["u2", "a", 150, "1"], ["u1", "a", 200, "2"]]
    assert rows["seq"].tolist() == [1, 1, 2, 3]
    assert store.impressions_since(2)["item_id"].tolist() == ["a"]
    assert store.prune_impressions(160) == 3                                  # items, not slates
    assert store.impression_counts("u1", 0) == {"a": 1}
    assert store.forget("u1")["impressions"] == 1
    assert len(store.impressions_since(0)) == 0


def test_a_per_item_log_is_migrated_with_its_watermarks(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE impressions (seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,
            item_id TEXT NOT NULL, ts INTEGER NOT NULL, model_version TEXT);
        INSERT INTO impressions (user_id, item_id, ts, model_version) VALUES
            ('u1', 'a', 100, '1'), ('u1', 'b', 100, '1'), ('u2', 'c', 120, '1');
    """)
    conn.commit()
    conn.close()
    store = SQLiteEventStore(path)
    assert store.impression_counts("u1", 0) == {"a": 1, "b": 1}
    rows = store.impressions_since(0)
    assert rows["item_id"].tolist() == ["a", "b", "c"] and rows["seq"].tolist() == [2, 2, 3]
    # a retraining job that had read up to seq 2 sees only what came after, old or new
    store.log_impressions("u2", ["d"], 130, "2")
    assert store.impressions_since(2)["item_id"].tolist() == ["c", "d"]
    assert SQLiteEventStore(path).impression_counts("u2", 0) == {"c": 1, "d": 1}   # opened again: no-op


def test_a_worker_opening_the_log_during_another_s_migration_waits_instead_of_failing(tmp_path):
    import sqlite3
    import threading
    import time

    from guanxi.serving.events import SQLiteEventStore

    path = tmp_path / "events.db"
    SQLiteEventStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")                  # another process, mid-migration
    release = threading.Timer(1.5, lambda: holder.execute("COMMIT"))
    release.start()
    start = time.monotonic()
    store = SQLiteEventStore(path, busy_timeout_ms=200)   # its busy timeout passes long before
    assert time.monotonic() - start >= 1.2
    assert store.max_seq() == 0
    release.join()
    holder.close()
