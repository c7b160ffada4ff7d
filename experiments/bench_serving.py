"""Load test of /recommend: guanxi (policy on) vs a trivial BentoML endpoint, same run, same machine.

    .venv/bin/python experiments/bench_serving.py [--users 20000] [--content-per-user 5] [--seconds 20]

1. A synthetic world with ~100k items (20k users x 5 content items each + accounts and merchants),
   cached in .worlds/; guanxi trained on it (time budget), registered and promoted in
   .bench/mlflow.db (cached: delete .bench to retrain).
2. The pure serving path in process: median time of Recommender.recommend + policy over 2,000 users.
3. `bentoml serve` of guanxi and of experiments/trivial_service.py, one at a time, each loaded
   by `wrk` (Debian) from this machine at 1, 8 and 32 connections; a Lua script spreads requests
   over 5,000 random users (known users plus 5 % unknown ones, served by the fallback).
Writes experiments/results/bench_serving.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.launch import free_port, server_env, start_server, stop_server, wait_ready  # noqa: E402

OUT = ROOT / "experiments" / "results" / "bench_serving.json"
BENCH = ROOT / ".bench"


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def prepare(users: int, content_per_user: float, budget: float) -> tuple[Path, str]:
    from features.world import WorldConfig, generate_world
    from features.world_io import write_world

    world = ROOT / ".worlds" / f"serve-{users}-c{content_per_user:g}"
    if not (world / "world.json").is_file():
        write_world(generate_world(WorldConfig(users=users, seed=0, content_per_user=content_per_user)), world)
    uri = f"sqlite:///{BENCH / 'mlflow.db'}"
    BENCH.mkdir(exist_ok=True)
    from training.registry import alias_version, use_tracking

    use_tracking(uri)
    if alias_version("champion") is None:
        guanxi = str(Path(sys.executable).with_name("guanxi"))
        _run([guanxi, "train", "--data", str(world), "--time-budget", str(budget), "--no-progress",
              "--register", "--tracking-uri", uri, "--experiment", "bench-serving"])
        _run([guanxi, "promote", alias_version("candidate"), "--tracking-uri", uri])
    return world, uri


def in_process(uri: str, n: int = 2000) -> dict:
    from serving.champion import load_served
    from serving.policy import load_policy

    served = load_served("models:/guanxi@champion", tracking_uri=uri)
    rec, policy = served.recommender, load_policy()
    users = np.random.default_rng(0).choice(rec.idmap.user_ids.astype(str), n)
    times = []
    for u in users:
        t = time.perf_counter()
        rec.recommend(u, 20, policy)
        times.append(time.perf_counter() - t)
    return {"items": int(rec.idmap.num_items), "users": int(rec.idmap.num_users),
            "model_version": served.version, "median_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * float(np.percentile(times, 99))}


def lua_script(users: np.ndarray, path: Path) -> Path:
    names = ",".join(f'"{u}"' for u in users)
    path.write_text(f"""
math.randomseed(42)
local users = {{{names}}}
request = function()
  local u = users[math.random(#users)]
  return wrk.format("POST", "/recommend", {{["Content-Type"] = "application/json"}},
                    '{{"user_id": "' .. u .. '", "k": 20}}')
end
""")
    return path


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(port: int, connections: int, seconds: int, script: Path) -> dict:
    threads = min(connections, 2)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), f"http://127.0.0.1:{port}/recommend"],
                         capture_output=True, text=True, check=True).stdout
    pct = {m[0]: float(m[1]) * _UNIT[m[2]] for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"connections": connections, "p50_ms": pct["50"], "p99_ms": pct["99"], "req_per_s": rps,
            "non_2xx": int(bad[1]) if bad else 0, "socket_errors": errors[1] if errors else None}


def load(service: str, cwd: Path | None, env: dict, seconds: int, script: Path, label: str) -> list[dict]:
    port = free_port()
    log = BENCH / f"{label}.log"
    proc = start_server("127.0.0.1", port, env, log=log, service=service, cwd=cwd)
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=300)
        wrk(port, 4, 3, script)                                   # warm-up
        rows = []
        for c in (1, 8, 32):
            row = wrk(port, c, seconds, script)
            print(f"  {label:12s} c={c:<3d} p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                  f"{row['req_per_s']:.0f} req/s  non-2xx {row['non_2xx']}", flush=True)
            rows.append(row)
        return rows
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--content-per-user", type=float, default=5.0)
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds")
    parser.add_argument("--seconds", type=int, default=20, help="per wrk run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    world, uri = prepare(args.users, args.content_per_user, args.budget)
    pure = in_process(uri)
    print(f"in process: {pure}", flush=True)
    rng = np.random.default_rng(1)
    import pandas as pd

    known = pd.read_parquet(world / "users.parquet")["user_id"].astype(str).to_numpy()
    users = np.concatenate([rng.choice(known, 4750, replace=False), [f"new{i}" for i in range(250)]])
    script = lua_script(users, BENCH / "recommend.lua")
    events = BENCH / "events.db"
    for f in BENCH.glob("events.db*"):
        f.unlink()
    result = {"machine": f"{platform.node()} {os.cpu_count()} cores", "wrk_seconds": args.seconds,
              "in_process": pure, "runs": []}
    for workers in args.workers:
        env = server_env(tracking_uri=uri, events_db=str(events), workers=workers, poll_seconds=10)
        run = {"workers": workers,
               "guanxi": load("serving.service:Guanxi", None, env, args.seconds, script, f"guanxi-w{workers}"),
               "trivial": load("trivial_service:Trivial", ROOT / "experiments", env, args.seconds, script,
                               f"trivial-w{workers}")}
        run["throughput_ratio"] = {str(g["connections"]): g["req_per_s"] / t["req_per_s"]
                                   for g, t in zip(run["guanxi"], run["trivial"])}
        result["runs"].append(run)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"\n{pure['items']} items, policy on; wrk on the same machine\n")
    print("| workers | endpoint | clients | p50 ms | p99 ms | req/s | non-2xx | guanxi/trivial req/s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in result["runs"]:
        for label in ("guanxi", "trivial"):
            for r in run[label]:
                ratio = run["throughput_ratio"][str(r["connections"])] if label == "guanxi" else ""
                print(f"| {run['workers']} | {label} | {r['connections']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                      f"{r['req_per_s']:.0f} | {r['non_2xx']} | {ratio if ratio == '' else f'{ratio:.2f}'} |")


if __name__ == "__main__":
    main()
