"""What the recent view costs and how fresh it is (docs/serving.md, "Real time").

    .venv/bin/python experiments/bench_recent.py [--events 1000000] [--replica-events 40] [--rounds 600]

Uses the 100k-item world and champion of ``bench_serving.py`` (``.bench/mlflow.db``; run that first).
1. Memory and feed rate: a view fed ``--events`` events of 100,000 users from a SQLite log
   (load time, refresh throughput, the worker's resident memory before and after: bytes per event).
2. In process, the request path as the service runs it (candidate table and contact facts on):
   median and p99 per request, alternating, for a user with no recent events, a user with
   10,000 recent events of their own, and a user whose 30 contacts each did 300 things since
   training; and the same users with no view attached (today's path).
3. Over HTTP, one `bentoml serve` worker on a SQLite log holding those events: one client,
   alternating the three users, p50 and p99 of each.
4. Two replicas on one PostgreSQL log (a throw-away cluster): a payment sent to replica A, then
   B's slate for that user polled every 20 ms until the item is gone; the delay of each of
   ``--replica-events`` events (the propagation bound: ``recent_refresh_seconds`` plus a request).
Writes experiments/results/bench_recent.json and prints each part as it ends.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT / ".bench"
OUT = ROOT / "experiments" / "results" / "bench_recent.json"
NOW = int(time.time())

from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready  # noqa: E402


def _fill(store, rows: list[dict]) -> None:
    for start in range(0, len(rows), 1000):
        store.append(rows[start:start + 1000])


def memory(n_events: int, tmp: Path) -> dict:
    """Feed a view ``n_events`` events of 100k users; its load time, refresh rate and RSS growth."""
    from guanxi.serving.events import SQLiteEventStore
    from guanxi.serving.policy import PolicyConfig
    from guanxi.serving.recent import RecentView

    store = SQLiteEventStore(tmp / "memory.db")
    rng = np.random.default_rng(0)
    users = rng.integers(0, 100_000, n_events)
    items = rng.integers(0, 100_000, n_events)
    kinds = np.array(["view", "read", "click", "like", "pay"])[rng.integers(0, 5, n_events)]
    start = time.perf_counter()
    _fill(store, [{"user_id": f"u{u}", "item_id": f"c{i}", "type": str(t), "event_id": f"m{j}"}
                  for j, (u, i, t) in enumerate(zip(users, items, kinds))])
    write_s = time.perf_counter() - start
    policy = PolicyConfig(recent_max_events=max(n_events, 1))
    before = psutil.Process().memory_info().rss
    view = RecentView(store, policy)
    start = time.perf_counter()
    view.load()
    load_s = time.perf_counter() - start
    after = psutil.Process().memory_info().rss
    tracemalloc.start()                       # what a second view holds live (RSS also keeps freed arenas)
    held = RecentView(store, policy)
    held.load()
    live = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    extra = 50_000
    _fill(store, [{"user_id": f"u{j % 5000}", "item_id": f"c{j}", "type": "click", "event_id": f"r{j}"}
                  for j in range(extra)])
    start = time.perf_counter()
    got = view.refresh()
    refresh_s = time.perf_counter() - start
    size = view.size()
    return {"events": size["events"], "users": size["users"], "write_seconds": round(write_s, 1),
            "load_seconds": round(load_s, 2), "rss_mb_growth": round((after - before) / 2**20, 1),
            "rss_bytes_per_event": round((after - before) / max(n_events, 1), 1),
            "live_bytes_per_event": round(live / max(n_events, 1), 1),
            "refresh_events": got, "refresh_events_per_s": round(got / refresh_s)}


def _users(rec, rng) -> dict[str, object]:
    """Three of the best-connected users: one with no recent events, one with 10,000 of their own,
    one whose 30 busiest contacts each log 300."""
    ids = rec.idmap.user_ids.astype(str)
    counts = np.diff(rec.contacts.indptr)
    has_history = np.diff(rec.bundle.history.indptr) > 0
    by_contacts = [u for u in np.argsort(-counts, kind="stable") if has_history[u]]
    plain, heavy, hub = ids[by_contacts[2]], ids[by_contacts[1]], ids[by_contacts[0]]
    return {"none": plain, "own_10000": heavy, "contacts_30x300": hub}


def recent_rows(rec, users: dict, rng) -> list[dict]:
    items = rec.item_ids
    rows = [{"user_id": users["own_10000"], "item_id": str(items[i]), "type": "click", "event_id": f"h{j}"}
            for j, i in enumerate(rng.integers(0, len(items), 10_000))]
    hub = rec.user_index(users["contacts_30x300"])
    for c in rec.contacts.of(hub)[0][:30]:
        rows += [{"user_id": str(rec.idmap.user_ids[c]), "item_id": str(items[i]), "type": "pay",
                  "event_id": f"c{c}-{j}"} for j, i in enumerate(rng.integers(0, len(items), 300))]
    return rows


def in_process(uri: str, tmp: Path, rounds: int) -> tuple[dict, dict, Path]:
    """Per-request times with and without the view; returns them, the users and the filled log."""
    from guanxi.serving.champion import load_served
    from guanxi.serving.events import SQLiteEventStore
    from guanxi.serving.policy import PolicyConfig
    from guanxi.serving.recent import RecentView
    from guanxi.serving.settings import ServeSettings

    served = load_served("models:/guanxi@champion", tracking_uri=uri, cache_dir=BENCH / "recent-cache",
                         ann=ServeSettings().retrieval())
    rec = served.recommender
    rng = np.random.default_rng(1)
    users = _users(rec, rng)
    db = tmp / "recent.db"
    store = SQLiteEventStore(db)
    _fill(store, recent_rows(rec, users, rng))
    policy = PolicyConfig()
    view = RecentView(store, policy)
    view.load()
    rec.attach_recent(view, policy)
    lookup = rec.recent                      # one per served version, as the service keeps it
    times: dict[str, list[float]] = {f"{name}/{mode}": [] for name in users for mode in ("view", "no-view")}
    for r in range(rounds):
        for mode in ("view", "no-view"):
            rec.recent = lookup if mode == "view" else None
            for name, user in users.items():
                start = time.perf_counter()
                scored = rec.score_many([user])[0]
                rec.recommend(user, 20, policy, scored=scored)
                times[f"{name}/{mode}"].append(time.perf_counter() - start)
    stats = {k: {"p50_ms": round(1000 * statistics.median(v[5:]), 3),
                 "p99_ms": round(1000 * float(np.percentile(v[5:], 99)), 3)} for k, v in times.items()}
    return stats, users, db


def over_http(uri: str, users: dict, db: Path, rounds: int) -> dict:
    """One worker on the filled log; one client alternating the users."""
    port = free_port()
    env = {**server_env(tracking_uri=uri, events_db=str(db), workers=1, poll_seconds=10),
           "GUANXI_MODEL_CACHE": str(BENCH / "recent-cache")}
    policy = BENCH / "recent-policy.yaml"
    policy.write_text("frequency_cap: 0\n")             # every request scored alike, round after round
    env["GUANXI_POLICY"] = str(policy)
    proc = start_server("127.0.0.1", port, env, log=BENCH / "recent-server.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=600)
        times: dict[str, list[float]] = {name: [] for name in users}
        for r in range(rounds):
            for name, user in users.items():
                req = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", method="POST",
                                             data=json.dumps({"user_id": user, "k": 20}).encode(),
                                             headers={"Content-Type": "application/json"})
                start = time.perf_counter()
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                times[name].append(time.perf_counter() - start)
    finally:
        stop_server(proc)
    return {k: {"p50_ms": round(1000 * statistics.median(v[10:]), 2),
                "p99_ms": round(1000 * float(np.percentile(v[10:], 99)), 2)} for k, v in times.items()}


def propagation(uri: str, n: int) -> dict:
    """Two replicas on one PostgreSQL log: delay from a payment on A to its merchant leaving B's slate."""
    from tests.postgres import PostgresCluster, find_bin_dir
    from tests.serving.http_post import post_json

    if find_bin_dir() is None:
        return {"skipped": "no PostgreSQL server binaries"}
    cluster = PostgresCluster(find_bin_dir())
    policy = BENCH / "recent-policy.yaml"
    policy.write_text("frequency_cap: 0\n")
    env = {**server_env(tracking_uri=uri, events_db=cluster.new_database(), workers=1, poll_seconds=10,
                        policy=str(policy)), "GUANXI_MODEL_CACHE": str(BENCH / "recent-cache")}
    ports = [free_port(), free_port()]
    procs = [start_server("127.0.0.1", p, env, log=BENCH / f"recent-replica-{i}.log") for i, p in enumerate(ports)]
    delays = []
    try:
        for proc, port in zip(procs, ports):
            wait_ready(proc, "127.0.0.1", port, timeout=600)
        a, b = ports
        for j in range(n):
            user = f"u{100 + j}"
            target = post_json(b, "/recommend", {"user_id": user, "k": 20})[1]["items"][0]["item_id"]
            sent = time.monotonic()
            post_json(a, "/feedback", {"events": [{"user_id": user, "item_id": target, "type": "pay",
                                                   "event_id": f"prop-{j}"}]})
            while target in [i["item_id"] for i in post_json(b, "/recommend", {"user_id": user, "k": 20})[1]["items"]]:
                time.sleep(0.02)
            delays.append(time.monotonic() - sent)
            time.sleep(0.37 * (j % 3))                    # spread the sends over the refresh cycle
    finally:
        for proc in procs:
            stop_server(proc)
        cluster.stop()
    return {"events": n, "p50_s": round(statistics.median(delays), 2),
            "p99_s": round(float(np.percentile(delays, 99)), 2), "max_s": round(max(delays), 2),
            "delays_s": [round(d, 2) for d in delays]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--replica-events", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=600)
    args = parser.parse_args()
    uri = f"sqlite:///{BENCH / 'mlflow.db'}"
    if not (BENCH / "mlflow.db").is_file():
        raise SystemExit("run experiments/bench_serving.py first: it trains and promotes the 100k-item champion")
    import mlflow

    from guanxi.registry import use_tracking

    use_tracking(uri)
    mlflow.set_tracking_uri(uri)
    tmp = BENCH / "recent"
    tmp.mkdir(parents=True, exist_ok=True)
    for f in tmp.glob("*.db*"):
        f.unlink()
    result = {"machine": f"{platform.node()} ({os.cpu_count()} cores)", "date": time.strftime("%Y-%m-%d %H:%M")}
    result["memory"] = memory(args.events, tmp)
    print("memory", result["memory"], flush=True)
    result["in_process"], users, db = in_process(uri, tmp, args.rounds)
    result["users"] = users
    print("in process", result["in_process"], flush=True)
    result["http"] = over_http(uri, users, db, args.rounds)
    print("http", result["http"], flush=True)
    result["propagation"] = propagation(uri, args.replica_events)
    print("propagation", {k: v for k, v in result["propagation"].items() if k != "delays_s"}, flush=True)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    OUT.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
