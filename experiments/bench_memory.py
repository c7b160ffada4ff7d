"""Memory and start time of one serving worker as the world grows (for sizing replicas).

    .venv/bin/python experiments/bench_memory.py [--users 20000 1000000] [--requests 300]

For each size: the synthetic world (``guanxi world``, cached in .worlds/), a hand-made bundle of it
(``tests/handmade.py``: the world read as codes, its circles, histories and popularity as training prepares them,
seeded random 64-d vectors in place of learnt ones: memory does not depend on what the vectors
learnt), then a real ``bentoml serve`` of that bundle with one worker and the defaults. Reported:
seconds from launch to ``/readyz``, the worker's RSS once ready and after ``--requests`` requests
for random known users (k = 20), and their p50 latency; and the peak RSS of building the bundle
(this process's high-water mark, when it was built in this run). Writes experiments/results/bench_memory.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready  # noqa: E402
from tests.handmade import handmade_bundle  # noqa: E402

OUT = ROOT / "experiments" / "results" / "bench_memory.json"
BENCH = ROOT / ".bench"


def _worker_rss_mb(proc: subprocess.Popen) -> float:
    workers = psutil.Process(proc.pid).children(recursive=True)
    return max(p.memory_info().rss for p in workers) / 2**20


def measure(users: int, requests: int) -> dict:
    world = ROOT / ".worlds" / f"world-{users}-s0"
    if not (world / "world.json").is_file():
        subprocess.run([str(Path(sys.executable).with_name("guanxi")), "world", "--users", str(users),
                        "--seed", "0", "--out", str(world)], check=True)
    bundle = BENCH / f"memory-{users}" / "bundle"
    t = time.perf_counter()
    build_peak = None
    if not (bundle / "bundle.json").is_file():
        handmade_bundle(world, bundle, 64, svd=False)
        build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # this process's high-water mark
    bundle_s = time.perf_counter() - t
    env = server_env(model_uri=str(bundle), events_db=str(BENCH / f"memory-{users}" / "events.db"),
                     workers=1, poll_seconds=0)
    port = free_port()
    t = time.perf_counter()
    proc = start_server("127.0.0.1", port, env, log=BENCH / f"memory-{users}.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=3600)
        ready_s = time.perf_counter() - t
        rss_ready = _worker_rss_mb(proc)
        ids = pd.read_parquet(world / "users.parquet", columns=["user_id"])["user_id"].astype(str).to_numpy()
        rng = np.random.default_rng(0)
        times = []
        for user in rng.choice(ids, requests):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", method="POST",
                                         data=json.dumps({"user_id": str(user), "k": 20}).encode(),
                                         headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
            times.append(1000 * (time.perf_counter() - start))
        rss_after = _worker_rss_mb(proc)
    finally:
        stop_server(proc)
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) / 2**20
    return {"users": users, "items": int(pd.read_parquet(world / "items.parquet", columns=["item_id"]).shape[0]),
            "bundle_mb": size, "bundle_build_s": bundle_s, "bundle_build_peak_rss_mb": build_peak, "ready_s": ready_s, "worker_rss_ready_mb": rss_ready,
            "worker_rss_after_mb": rss_after, "requests": requests, "p50_ms": statistics.median(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    rows = []
    for users in args.users:
        rows.append(measure(users, args.requests))
        print(rows[-1], flush=True)
        OUT.write_text(json.dumps(rows, indent=2))
    print("| users | items | bundle MB | launch → ready s | worker RSS ready MB | after requests MB | p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['users']:,} | {r['items']:,} | {r['bundle_mb']:.0f} | {r['ready_s']:.1f} | "
              f"{r['worker_rss_ready_mb']:.0f} | {r['worker_rss_after_mb']:.0f} | {r['p50_ms']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
