"""One contract, two stores: every test here runs against the SQLite log and a real PostgreSQL
database (the PostgreSQL half is in the slow tier; it skips where no PostgreSQL binary exists).

Two store objects opened on the same target stand for two service replicas sharing one log."""
from __future__ import annotations

import threading

import pytest

from guanxi.serving.event_stores import open_event_store
from guanxi.serving.events import MAX_MUTES_TOTAL, SettingsError


@pytest.fixture
def pair(events_target):
    """Two stores ("replicas") on one fresh log."""
    a, b = open_event_store(events_target), open_event_store(events_target)
    yield a, b
    a.close()
    b.close()


def _event(user: str, item: str, event_id: str | None = None, **extra) -> dict:
    return {"user_id": user, "item_id": item, "type": "click", "event_id": event_id, **extra}


def test_a_retried_batch_is_stored_once_whichever_replica_takes_it(pair):
    a, b = pair
    batch = [_event("u1", "i1", "e1"), _event("u1", "i2", "e2"), _event("u2", "i1", "e1")]
    assert (a.append(batch).accepted, a.append(batch).duplicates) == (3, 3)
    assert b.append(batch[:1] + [_event("u1", "i3", "e3")]).duplicates == 1
    assert b.append([_event("u3", "x", "d"), _event("u3", "x", "d")]).duplicates == 1     # repeated in the batch
    rows = a.events_since(0)
    assert rows[["user_id", "event_id"]].values.tolist() == [
        ["u1", "e1"], ["u1", "e2"], ["u2", "e1"], ["u1", "e3"], ["u3", "d"]]
    assert rows["seq"].is_monotonic_increasing and a.max_seq() == b.max_seq() == int(rows["seq"].max())


def test_events_keep_their_fields_and_read_by_watermark(pair):
    a, b = pair
    a.append([_event("u1", "i1", "e1", ts=1_700_000_000, value=2.5), _event("u1", "i2", "e2")])
    rows = b.events_since(0)
    first = rows.iloc[0]
    assert (first["ts"], first["value"], first["type"]) == (1_700_000_000, 2.5, "click")
    assert rows["received_ts"].min() > 1_700_000_000 and rows["value"].isna().tolist() == [False, True]
    mark = int(rows["seq"].iloc[0])
    assert b.events_since(mark)["event_id"].tolist() == ["e2"]
    assert b.events_since(0, upto=mark)["event_id"].tolist() == ["e1"]
    assert len(b.events_since(b.max_seq())) == 0


def test_a_batch_that_fails_stores_nothing(pair):
    a, _ = pair
    a.append([_event("u1", "i1", "e1")])
    with pytest.raises(Exception):
        a.append([_event("u1", "i2", "e2"), {"user_id": "u1", "item_id": "i3", "type": None, "event_id": "e3"}])
    assert a.events_since(0)["event_id"].tolist() == ["e1"]


def test_concurrent_appends_lose_nothing_and_watermarks_stay_in_order(pair):
    stores = pair
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(20):
                stores[worker % 2].append([_event(f"w{worker}", f"i{n}", f"e{n}-{k}") for k in range(3)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = stores[0].events_since(0)
    assert len(rows) == 4 * 20 * 3 and rows["seq"].is_unique and rows["seq"].is_monotonic_increasing


def test_impressions_from_both_replicas_count_toward_the_cap(pair):
    a, b = pair
    odd = ['a,b', '["x"]', 'q"uote', 'back\\', '商户 ü', ']', '']
    a.log_impressions_many([("u1", odd, 100, "1"), ("u1", ["a"], 150, "1")])
    b.log_impressions("u1", ["a", "b"], 200, "2")
    b.log_impressions("u1", [], 250, "2")                              # an empty slate logs nothing
    want = {i: 1 for i in odd} | {"a": 2, "b": 1}
    assert a.impression_counts("u1", 0) == b.impression_counts("u1", 0) == want
    assert b.impression_counts("u1", 150) == {"a": 2, "b": 1}
    assert a.impression_counts("nobody", 0) == {}
    rows = a.impressions_since(0)
    assert rows["item_id"].tolist() == odd + ["a", "a", "b"]
    assert rows["seq"].is_monotonic_increasing and rows["model_version"].tolist()[-1] == "2"
    assert a.impressions_since(int(rows["seq"].iloc[-1]))["item_id"].tolist() == []
    assert b.prune_impressions(160) == len(odd) + 1                    # items, not slates
    assert a.impression_counts("u1", 0) == {"a": 1, "b": 1}


def test_settings_are_shared_and_reading_them_writes_nothing(pair):
    a, b = pair
    assert b.settings("u1").to_json() == {"user_id": "u1", "commercial_opt_out": False, "mute": []}
    a.update_settings("u1", True, ["m2", "m1"], [])
    assert b.settings("u1").to_json() == {"user_id": "u1", "commercial_opt_out": True, "mute": ["m1", "m2"]}
    b.update_settings("u1", None, [], ["m1"])
    assert a.settings("u1").mute == ("m2",)
    assert a.update_settings("u1", None, [], []).commercial_opt_out is True     # nothing to change
    assert a.forget("nobody") == {"events": 0, "settings": 0, "mutes": 0, "impressions": 0}


def test_the_mute_cap_holds_across_replicas(pair):
    a, b = pair
    a.update_settings("u1", None, [f"a{i}" for i in range(MAX_MUTES_TOTAL - 5)], [])
    with pytest.raises(SettingsError) as err:
        b.update_settings("u1", True, [f"b{i}" for i in range(10)], [])
    assert err.value.field == "mute"
    after = a.settings("u1")
    assert len(after.mute) == MAX_MUTES_TOTAL - 5 and after.commercial_opt_out is False   # nothing changed


def test_forget_is_seen_by_every_replica_and_survives_reopening(pair, events_target):
    a, b = pair
    a.append([_event("u1", "i1", "e1"), _event("u2", "i1", "e1")])
    a.log_impressions("u1", ["x", "y"], 100, "1")
    a.update_settings("u1", True, ["m"], [])
    assert b.forget("u1") == {"events": 1, "settings": 1, "mutes": 1, "impressions": 2}
    assert a.forget_list().contains("u1") and not a.forget_list().contains("u2")
    assert a.forgotten_count() == 1 and a.events_since(0)["user_id"].tolist() == ["u2"]
    again = open_event_store(events_target)                 # the salt lives in the log
    assert again.forget_list().mask(["u1", "u2"]).tolist() == [True, False]
    again.close()


def test_impressions_logged_while_a_forget_ran_are_dropped(pair):
    a, b = pair
    a.log_impressions("u1", ["x"], 100, "1")
    b.forget("u1")
    a.log_impressions("u1", ["y"], 200, "1")                # a replica that had not heard yet:
    a.log_impressions("u2", ["z"], 200, "1")                # its write checks the list itself
    assert b.drop_forgotten_impressions(b.forget_list(), since_ts=150) == 0
    assert a.impressions_since(0)["user_id"].tolist() == ["u2"]


def test_opening_without_create_needs_an_existing_log(events_target):
    with pytest.raises((FileNotFoundError, ValueError)) as err:
        open_event_store(events_target, create=False)
    assert "no event log" in str(err.value)
    open_event_store(events_target).close()
    open_event_store(events_target, create=False).close()


def test_forget_is_final_for_every_write_on_every_replica(pair):
    a, b = pair
    b.forget("u1")                                         # one replica forgets; the other keeps writing
    done = a.append([_event("u1", "i1", "retry-1"), _event("u2", "i1", "e2")])
    assert (done.accepted, done.duplicates) == (2, 0)      # acknowledged, so the client stops retrying ...
    assert a.events_since(0)["user_id"].tolist() == ["u2"]  # ... and never stored
    assert a.update_settings("u1", True, ["m1"], []).to_json() == {"user_id": "u1", "commercial_opt_out": False,
                                                                   "mute": []}
    assert b.settings("u1").to_json() == {"user_id": "u1", "commercial_opt_out": False, "mute": []}
    a.log_impressions_many([("u1", ["x"], 100, "1"), ("u2", ["y"], 100, "1")])
    assert a.impressions_since(0)["user_id"].tolist() == ["u2"]
    assert b.forget("u1") == {"events": 0, "settings": 0, "mutes": 0, "impressions": 0}


def test_writes_racing_a_forget_leave_nothing_of_the_user(pair):
    a, b = pair
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_writing() -> None:
        n = 0
        try:
            while not stop.is_set():
                a.append([_event("u1", "i1", f"race-{n}")])
                a.update_settings("u1", None, [f"m{n % 5}"], [])
                a.log_impressions("u1", ["x"], 100 + n, "1")
                n += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        import time
        time.sleep(0.3)
        b.forget("u1")
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join()
    assert not errors
    assert "u1" not in set(a.events_since(0)["user_id"]) and "u1" not in set(a.impressions_since(0)["user_id"])
    assert a.settings("u1").mute == ()
