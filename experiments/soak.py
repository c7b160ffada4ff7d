"""Soak test: a real `guanxi serve` under a fixed request rate for minutes, a promotion in the middle.

    .venv/bin/python experiments/soak.py [--seconds 300] [--rate 40] [--users 3000]
        [--store postgresql [--restart-store]]

1. A synthetic world (cached in .worlds/), two guanxi versions trained on it and registered in
   .soak/mlflow.db, v1 promoted (cached: delete .soak to retrain).
2. `guanxi serve` (the CLI, as an operator runs it, with an API token) on a free port, polling the
   alias every 2 s.
3. An open-loop load at ``--rate`` requests per second (a request is due every 1/rate s, whatever
   the answers take): 70 % /recommend, 25 % /feedback (batches of 5 events, each with its own
   event_id), 5 % /settings; halfway through, `guanxi promote 2`.
4. Every second, the resident memory of the server and its workers.
5. With ``--store postgresql`` the event log is a throw-away PostgreSQL cluster (tests/postgres.py);
   ``--restart-store`` restarts it once, at 60 % of the run (a fast shutdown cuts every session),
   keeping it down ``--outage-seconds`` (default 5) before it starts again.

Bars: no failed request (anything but a 2xx, or no answer; a 503 with ``Retry-After`` is the
answer the service owes a client while its store is down, so it is counted apart, and must fall
within the outage and the few seconds after it); no request hangs past the service's timeouts (the
slowest answer under 10 s); memory after warm-up (the first 20 %)
grows by under 10 % to the end (medians of the first and last 10 s after warm-up); every acknowledged
event is in the event log afterwards; the new version serves from 6 s after the promotion command
returned (the alias moved). When that command is slow to return (a CLI's start-up on a busy host),
the load runs on past ``--seconds`` (at most 60 s more) until 3 s of it fall after the allowance.
Writes experiments/results/soak.json (or ``--out``; soak_postgres.json with ``--store postgresql``)
and exits 1 when a bar fails.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guanxi.serving.launch import free_port, wait_ready  # noqa: E402

TOKEN = "soak-token"
SETTLE = 3.0      # seconds of load judged after the promotion's 6 s allowance
MIX = (("recommend", 0.70), ("feedback", 0.25), ("settings", 0.05))


def prepare(users: int, root: Path) -> tuple[str, Path, Path]:
    """(tracking URI, working dir, world dir) with versions 1 and 2 registered and v1 @champion."""
    from guanxi.features.world import WorldConfig, generate_world
    from guanxi.features.world_io import write_world
    from guanxi.registry import alias_version, use_tracking

    world = ROOT / ".worlds" / f"soak-{users}"
    if not (world / "world.json").is_file():
        write_world(generate_world(WorldConfig(users=users, seed=3)), world)
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    use_tracking(uri)
    if alias_version("champion") is None:
        guanxi = str(Path(sys.executable).with_name("guanxi"))
        for seed in (0, 1):
            subprocess.run([guanxi, "train", "--data", str(world), "--set", "max_epochs=3", "--set", f"seed={seed}",
                            "--no-progress", "--register", "--tracking-uri", uri, "--experiment", "soak",
                            "--events-db", str(root / "registry-events.db")], check=True, cwd=root)
        subprocess.run([guanxi, "promote", "1", "--tracking-uri", uri, "--events-db",
                        str(root / "registry-events.db")], check=True, cwd=root)
    return uri, root, world


def _tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


class Load:
    """The request mix against one server; records every outcome."""

    def __init__(self, port: int, users: list[str], items: list[str], seed: int = 0) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.users, self.items = users, items
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        # (kind, status or -1, seconds, Retry-After given, wall time answered)
        self.outcomes: list[tuple[str, int, float, bool, float]] = []
        self.acked: list[str] = []
        self.versions: list[tuple[float, str]] = []
        self._n = 0

    def _post(self, path: str, body: dict) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, {"retry_after": err.headers.get("Retry-After") is not None}

    def one(self) -> None:
        with self.lock:
            self._n += 1
            n = self._n
            kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
            user = self.rng.choice(self.users)
            items = [self.rng.choice(self.items) for _ in range(5)]
        start = time.perf_counter()
        body: dict = {}
        try:
            if kind == "recommend":
                status, body = self._post("/recommend", {"user_id": user, "k": 20})
                if status == 200:
                    with self.lock:
                        self.versions.append((time.time(), body["model_version"]))
            elif kind == "feedback":
                ids = [f"soak-{n}-{j}" for j in range(5)]
                events = [{"user_id": user, "item_id": item, "type": "click", "event_id": eid}
                          for item, eid in zip(items, ids)]
                status, body = self._post("/feedback", {"events": events})
                if status == 200 and body.get("accepted") == 5:
                    with self.lock:
                        self.acked.extend(f"{user}\t{eid}" for eid in ids)
            else:
                status, body = self._post("/settings", {"user_id": user, "mute": [items[0]], "unmute": [items[1]]})
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
            status = -1
        with self.lock:
            self.outcomes.append((kind, status, time.perf_counter() - start, bool(body.get("retry_after")),
                                  time.time()))


def run_soak(uri: str, cwd: Path, seconds: float, rate: float, users: list[str], items: list[str],
             events_db: str | Path, log: Path | None = None, restart: Callable[[], float] | None = None,
             restart_at: float = 0.6) -> dict:
    """Serve, load at ``rate`` for ``seconds`` with a promotion to v2 halfway, and measure (module doc).
    ``restart`` (the store's), when given, runs once at ``restart_at`` of the run."""
    port = free_port()
    env = dict(os.environ, GUANXI_API_TOKEN=TOKEN, BENTOML_DO_NOT_TRACK="True")
    guanxi = [sys.executable, "-m", "guanxi.app.cli"]
    server = subprocess.Popen(guanxi + ["serve", "--port", str(port), "--tracking-uri", uri, "--events-db",
                                        str(events_db), "--poll-seconds", "2"],
                              env=env, cwd=cwd, stdout=open(log, "ab") if log else subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    load = Load(port, users, items)
    rss: list[tuple[float, int]] = []
    try:
        wait_ready(server, "127.0.0.1", port, timeout=300)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                rss.append((time.monotonic(), _tree_rss(server.pid)))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.monotonic()
        promoted_at = None
        promoted: dict[str, float] = {}
        outage: dict[str, float] = {}

        def restart_store() -> None:
            outage["start"] = time.time()
            restart()
            outage["end"] = time.time()
        if restart is not None:
            threading.Timer(restart_at * seconds, restart_store).start()

        def promote() -> None:
            # The bar counts from when the alias has moved (the command returned), not from when
            # the command started: a CLI's start-up on a busy host is no part of the server's reload.
            subprocess.run(guanxi + ["promote", "2", "--tracking-uri", uri, "--events-db", str(events_db)],
                           cwd=cwd, check=True,
                           stdout=subprocess.DEVNULL)
            promoted["done"] = time.time()
        with ThreadPoolExecutor(max_workers=32) as pool:
            k = 0
            # The load runs ``seconds``, and on past them (at most a minute) until the promotion's
            # allowance has passed with load behind it: a promote command slow to start on a busy
            # host would otherwise leave no request to judge the bar by.
            while (now := time.monotonic()) - start < seconds or (
                    now - start < seconds + 60 and time.time() <= promoted.get("done", math.inf) + 6 + SETTLE):
                due = start + k / rate
                if due > now:
                    time.sleep(due - now)
                pool.submit(load.one)
                k += 1
                if promoted_at is None and time.monotonic() - start >= seconds / 2:
                    promoted_at = time.time()
                    threading.Thread(target=promote, daemon=True).start()
        stop.set()
        sampler.join()
        elapsed = time.monotonic() - start
    finally:
        server.send_signal(15)
        server.wait(timeout=60)
    from guanxi.serving.event_stores import open_event_store

    store = open_event_store(str(events_db), create=False)
    logged = store.events_since(0)
    store.close()
    stored = {f"{u}\t{e}" for u, e in zip(logged["user_id"], logged["event_id"])}
    missing = [a for a in load.acked if a not in stored]
    warm = start + 0.2 * seconds
    after = [(t, r) for t, r in rss if t >= warm]
    first = statistics.median(r for t, r in after if t < warm + 10)
    last = statistics.median(r for t, r in after if t >= after[-1][0] - 10)
    unavailable = [o for o in load.outcomes if o[1] == 503 and o[3]]
    failed = [o for o in load.outcomes if not 200 <= o[1] < 300 and not (o[1] == 503 and o[3])]
    slowest = max(o[2] for o in load.outcomes)
    # A 503 is owed while the store is down and for the few seconds its pool takes to reconnect.
    window = (outage.get("start", math.inf), outage.get("end", -math.inf) + 10)
    stray = [o for o in unavailable if not window[0] <= o[4] <= window[1] + o[2]]
    by_kind = {}
    for kind, _ in MIX:
        lat = sorted(o[2] for o in load.outcomes if o[0] == kind)
        by_kind[kind] = {"requests": len(lat), "p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
                         "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2) if lat else None}
    moved = promoted.get("done")
    served_after = {v for t, v in load.versions if moved and t > moved + 6}
    result = {
        "seconds": round(elapsed, 1), "rate_target": rate, "rate_achieved": round(len(load.outcomes) / elapsed, 2),
        "requests": len(load.outcomes), "failed": len(failed), "failures": [list(f) for f in failed[:20]],
        "unavailable_503": len(unavailable), "unavailable_outside_outage": len(stray),
        "store_outage_seconds": round(outage["end"] - outage["start"], 2) if "end" in outage else None,
        "slowest_ms": round(1000 * slowest, 1),
        "by_kind": by_kind, "acknowledged_events": len(load.acked), "missing_events": len(missing),
        "rss_mb_after_warmup": round(first / 2**20, 1), "rss_mb_end": round(last / 2**20, 1),
        "rss_growth": round(last / first - 1.0, 4),
        "versions_served": sorted({v for _, v in load.versions}), "version_after_promotion": sorted(served_after),
        "promote_command_seconds": round(moved - promoted_at, 1) if moved and promoted_at else None,
        "rss_series_mb": [round(r / 2**20, 1) for _, r in rss],
    }
    result["bars"] = {"no_failed_request": not failed, "no_request_hangs": slowest < 10.0,
                      "503_only_during_the_outage": not stray,
                      "rss_growth_under_10pct": result["rss_growth"] < 0.10,
                      "every_acknowledged_event_stored": not missing and bool(load.acked),
                      "promotion_served": served_after == {"2"}}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--restart-store", action="store_true", help="restart PostgreSQL once, at 60 %% of the run")
    parser.add_argument("--outage-seconds", type=float, default=5.0, help="how long the restarted store stays down")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.restart_store and args.store != "postgresql":
        parser.error("--restart-store needs --store postgresql")
    out = args.out or str(ROOT / "experiments" / "results" / ("soak.json" if args.store == "sqlite"
                                                              else "soak_postgres.json"))
    uri, cwd, world = prepare(args.users, ROOT / ".soak")
    import pandas as pd

    users = pd.read_parquet(world / "users.parquet")["user_id"].astype(str).tolist()
    items = pd.read_parquet(world / "items.parquet")["item_id"].astype(str).tolist()
    cluster = None
    db: str | Path = cwd / f"events-{int(time.time())}.db"
    if args.store == "postgresql":
        from tests.postgres import PostgresCluster, find_bin_dir

        if find_bin_dir() is None:
            raise SystemExit("--store postgresql: no PostgreSQL server binaries (set GUANXI_PG_BIN)")
        cluster = PostgresCluster(find_bin_dir())
        db = cluster.new_database()
    try:
        result = run_soak(uri, cwd, args.seconds, args.rate, users + ["new-user-1", "new-user-2"], items, db,
                          log=cwd / "server.log",
                          restart=(lambda: cluster.restart(args.outage_seconds)) if args.restart_store else None)
    finally:
        if cluster is not None:
            cluster.stop()
    result.update({"machine": f"{platform.node()} ({os.cpu_count()} cores)", "world_users": args.users,
                   "store": args.store, "store_restarted": args.restart_store,
                   "outage_seconds_asked": args.outage_seconds if args.restart_store else None,
                   "date": time.strftime("%Y-%m-%d %H:%M:%S")})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k not in ("rss_series_mb", "failures")}
    print(json.dumps(summary, indent=2))
    return 0 if all(result["bars"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
