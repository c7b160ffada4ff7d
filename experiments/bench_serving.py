"""Load test of /recommend: guanxi (policy on) vs a trivial BentoML endpoint, same run, same machine.

    .venv/bin/python experiments/bench_serving.py [--users 20000] [--content-per-user 5] [--seconds 5] [--rounds 6]

1. A synthetic world with ~100k items (20k users x 5 content items each + accounts and merchants),
   cached in .worlds/; guanxi trained on it (time budget), registered and promoted in
   .bench/mlflow.db (cached: delete .bench to retrain).
2. The pure serving path in process: median time of Recommender.recommend + policy over 2,000 users,
   one at a time with every item scored, one at a time through the candidate table and contact
   facts (as the service scores them), and in batches of 8 with and without them (and the time
   to build the table and the facts).
3. Four `bentoml serve` processes up at once: guanxi (defaults: candidate table on), guanxi with
   the table off (`GUANXI_TABLE_MAX_SCORES=0`: every item scored), experiments/trivial_service.py
   (the yardstick, Python's default GC) and the same trivial endpoint with guanxi's GC settings
   (`trivial-gc`, serving/gc_settings.py); with `--before REF`, a fifth: the same model served by
   the code at git commit REF (`guanxi-before`), for a regression check. Each guanxi server writes
   its own event log, fresh for every worker count. At 1, 8 and 32 connections, `--rounds` alternating
   `wrk` runs (one per server in turn, so all see the same machine) from this machine; a Lua
   script spreads requests over 5,000 random users (known users plus 5 % unknown ones, served by
   the fallback). Reported: medians per endpoint, the median of the per-round throughput ratios
   to the trivial endpoint, and guanxi's to trivial-gc.
4. With `--stores sqlite postgresql`, a guanxi server on a PostgreSQL event log (`guanxi-pg`, a
   throw-away cluster started here) joins the side-by-side runs, and both guanxi servers take
   `/feedback` batches of 100 events (unique `event_id`s, 8 clients, `--rounds` alternating runs):
   acknowledged batches per second on each store.
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

from guanxi.app.package_tree import importable_checkout  # noqa: E402
from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready  # noqa: E402

OUT = ROOT / "experiments" / "results" / "bench_serving.json"
BENCH = ROOT / ".bench"


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def prepare(users: int, content_per_user: float, budget: float) -> tuple[Path, str]:
    from guanxi.features.world import WorldConfig, generate_world
    from guanxi.features.world_io import write_world

    world = ROOT / ".worlds" / f"serve-{users}-c{content_per_user:g}"
    if not (world / "world.json").is_file():
        write_world(generate_world(WorldConfig(users=users, seed=0, content_per_user=content_per_user)), world)
    uri = f"sqlite:///{BENCH / 'mlflow.db'}"
    BENCH.mkdir(exist_ok=True)
    from guanxi.registry import alias_version, use_tracking

    use_tracking(uri)
    if alias_version("champion") is None:
        guanxi = str(Path(sys.executable).with_name("guanxi"))
        _run([guanxi, "train", "--data", str(world), "--time-budget", str(budget), "--no-progress",
              "--register", "--tracking-uri", uri, "--experiment", "bench-serving",
              "--events-db", str(BENCH / "registry-events.db")])
        _run([guanxi, "promote", alias_version("candidate"), "--tracking-uri", uri,
              "--events-db", str(BENCH / "registry-events.db")])
    return world, uri


def checkout(ref: str) -> Path:
    """The code at ``ref`` in a git worktree under .bench/before (replaced on every run)."""
    where = BENCH / "before"
    subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)
    _run(["git", "worktree", "add", "--detach", str(where), ref])
    return where


def in_process(uri: str, n: int = 2000, batch: int = 8) -> dict:
    """The pure serving path (no HTTP, no event log): one request at a time with every item scored,
    and in batches of ``batch`` as the service scores them, with and without the candidate table."""
    from guanxi.serving.champion import load_served
    from guanxi.serving.policy import load_policy
    from guanxi.serving.recommender import Recommender
    from guanxi.serving.retrieval import RetrievalConfig

    served = load_served("models:/guanxi@champion", tracking_uri=uri)
    exact, policy = served.recommender, load_policy()
    t = time.perf_counter()
    table = Recommender(exact.bundle, RetrievalConfig(table_max_scores=4_000_000_000), None)
    build = time.perf_counter() - t
    users = np.random.default_rng(0).choice(exact.idmap.user_ids.astype(str), n)

    def one(rec: Recommender) -> list[float]:
        times = []
        for u in users:
            t = time.perf_counter()
            rec.recommend(u, 20, policy)
            times.append(time.perf_counter() - t)
        return times

    def one_table(rec: Recommender) -> list[float]:
        times = []
        for u in users:
            t = time.perf_counter()
            rec.recommend(u, 20, policy, scored=rec.score_many([u])[0])
            times.append(time.perf_counter() - t)
        return times

    def batched(rec: Recommender) -> list[float]:
        times = []
        for lo in range(0, n, batch):
            group = list(users[lo:lo + batch])
            t = time.perf_counter()
            for u, scored in zip(group, rec.score_many(group)):
                rec.recommend(u, 20, policy, scored=scored)
            times.append((time.perf_counter() - t) / len(group))
        return times

    single, single_t, exact_b, table_b = one(exact), one_table(table), batched(exact), batched(table)
    ms = lambda x: 1000 * statistics.median(x)  # noqa: E731
    return {"items": int(exact.idmap.num_items), "users": int(exact.idmap.num_users),
            "model_version": served.version, "median_ms": ms(single),
            "p99_ms": 1000 * float(np.percentile(single, 99)), "table_one_at_a_time_ms": ms(single_t),
            f"batch{batch}_exact_ms_per_request": ms(exact_b), f"batch{batch}_table_ms_per_request": ms(table_b),
            "table_build_s": build, "table_kinds": {k: list(v.shape) for k, v in table.tables.items()},
            "contact_fact_entries": int(len(table.facts.items)) if table.facts is not None else 0}


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


def feedback_script(users: np.ndarray, items: np.ndarray, path: Path, batch: int = 100) -> Path:
    """``/feedback`` batches of ``batch`` click events, every ``event_id`` unique (thread, start
    time, request and position), so each acknowledged batch is a real write of ``batch`` rows."""
    user_list = ",".join(f'"{u}"' for u in users)
    item_list = ",".join(f'"{i}"' for i in items)
    path.write_text(f"""
local users = {{{user_list}}}
local items = {{{item_list}}}
local counter = 1
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args) math.randomseed(os.time() + tid); prefix = tid .. "-" .. os.time() .. "-" .. math.random(1e9); n = 0 end
request = function()
  n = n + 1
  local parts = {{}}
  for k = 1, {batch} do
    parts[k] = '{{"user_id": "' .. users[math.random(#users)] .. '", "item_id": "' .. items[math.random(#items)]
      .. '", "type": "click", "event_id": "' .. prefix .. '-' .. n .. '-' .. k .. '"}}'
  end
  return wrk.format("POST", "/feedback", {{["Content-Type"] = "application/json"}},
                    '{{"events": [' .. table.concat(parts, ",") .. ']}}')
end
""")
    return path


def feedback_side_by_side(ports: dict[str, int], seconds: int, rounds: int, script: Path) -> dict:
    """Acknowledged ``/feedback`` batches per second on each guanxi server (8 clients), alternating."""
    runs: dict[str, list[dict]] = {label: [] for label in ports}
    for _ in range(rounds):
        for label, port in ports.items():
            runs[label].append(wrk(port, 8, seconds, script, path="/feedback"))
    out = {}
    for label, got in runs.items():
        out[label] = {"batches_per_s": statistics.median(r["req_per_s"] for r in got),
                      "p50_ms": statistics.median(r["p50_ms"] for r in got),
                      "p99_ms": statistics.median(r["p99_ms"] for r in got),
                      "non_2xx": sum(r["non_2xx"] for r in got), "rounds": got}
        print(f"  feedback {label:10s} {out[label]['batches_per_s']:.0f} batches/s of 100  p50 "
              f"{out[label]['p50_ms']:.1f} ms  p99 {out[label]['p99_ms']:.1f} ms  non-2xx {out[label]['non_2xx']}",
              flush=True)
    return out


def wrk(port: int, connections: int, seconds: int, script: Path, path: str = "/recommend") -> dict:
    threads = min(connections, 2)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    pct = {m[0]: float(m[1]) * _UNIT[m[2]] for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"connections": connections, "p50_ms": pct["50"], "p99_ms": pct["99"], "req_per_s": rps,
            "non_2xx": int(bad[1]) if bad else 0, "socket_errors": errors[1] if errors else None}


def start(service: str, cwd: Path | None, env: dict, label: str, script: Path) -> tuple[object, int]:
    port = free_port()
    proc = start_server("127.0.0.1", port, env, log=BENCH / f"{label}.log", service=service, cwd=cwd)
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=600)
        wrk(port, 4, 3, script)                                   # warm-up
    except BaseException:
        stop_server(proc)
        raise
    return proc, port


def side_by_side(ports: dict[str, int], seconds: int, rounds: int, script: Path, workers: int) -> dict:
    """All servers up at once; at each client count, ``rounds`` alternating wrk runs (one per server
    in turn) so that every endpoint sees the same machine; medians per endpoint, and per guanxi
    endpoint the median of its per-round throughput ratios to the trivial one."""
    rows: dict[str, list[dict]] = {label: [] for label in ports}
    ratios: dict[str, dict[str, float]] = {label: {} for label in ports if label != "trivial"}
    vs_gc: dict[str, float] = {}          # guanxi against the trivial endpoint with guanxi's GC settings
    vs_before: dict[str, float] = {}      # guanxi against the same model served by an earlier commit
    for c in (1, 8, 32):
        runs: dict[str, list[dict]] = {label: [] for label in ports}
        for _ in range(rounds):
            for label, port in ports.items():
                runs[label].append(wrk(port, c, seconds, script))
        for label, got in runs.items():
            row = {"connections": c, **{key: statistics.median(r[key] for r in got)
                                        for key in ("p50_ms", "p99_ms", "req_per_s")},
                   "non_2xx": sum(r["non_2xx"] for r in got), "rounds": got}
            rows[label].append(row)
            print(f"  w{workers} {label:12s} c={c:<3d} p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                  f"{row['req_per_s']:.0f} req/s  non-2xx {row['non_2xx']}", flush=True)
        for label in ratios:
            per_round = [g["req_per_s"] / t["req_per_s"] for g, t in zip(runs[label], runs["trivial"])]
            ratios[label][str(c)] = statistics.median(per_round)
            print(f"  w{workers} {label}/trivial req/s at c={c}: {ratios[label][str(c)]:.2f} "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)})", flush=True)
        if "guanxi-before" in runs:
            per_round = [g["req_per_s"] / b["req_per_s"] for g, b in zip(runs["guanxi"], runs["guanxi-before"])]
            vs_before[str(c)] = statistics.median(per_round)
            print(f"  w{workers} guanxi/guanxi-before req/s at c={c}: {vs_before[str(c)]:.2f} "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)})", flush=True)
        per_round = [g["req_per_s"] / t["req_per_s"] for g, t in zip(runs["guanxi"], runs["trivial-gc"])]
        vs_gc[str(c)] = statistics.median(per_round)
        print(f"  w{workers} guanxi/trivial-gc req/s at c={c}: {vs_gc[str(c)]:.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)})", flush=True)
    return {"workers": workers, **rows, "throughput_ratio": ratios, "guanxi_vs_trivial_gc": vs_gc,
            "guanxi_vs_before": vs_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--content-per-user", type=float, default=5.0)
    parser.add_argument("--budget", type=float, default=150.0, help="training seconds")
    # Short alternating runs: the shared machine's load changes within seconds, and a ratio taken
    # from two adjacent 5 s runs is less disturbed by it than one from two 10 s runs.
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="alternating runs per client count")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"],
                        help="event logs to serve guanxi on (postgresql: a throw-away local cluster)")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="also serve the same model with the code at this commit (`guanxi-before`, from a "
                             "git worktree in .bench/before), side by side: a regression check")
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
    items = pd.read_parquet(world / "items.parquet")["item_id"].astype(str).to_numpy()
    fb_script = feedback_script(users[:4750], rng.choice(items, 5000, replace=False), BENCH / "feedback.lua")
    before = checkout(args.before) if args.before else None
    cluster = None
    if "postgresql" in args.stores:
        from tests.postgres import PostgresCluster, find_bin_dir

        if find_bin_dir() is None:
            raise SystemExit("--stores postgresql: no PostgreSQL server binaries (set GUANXI_PG_BIN)")
        cluster = PostgresCluster(find_bin_dir())
        import atexit

        atexit.register(cluster.stop)
    result = {"machine": f"{platform.node()} {os.cpu_count()} cores", "wrk_seconds": args.seconds,
              "rounds": args.rounds, "in_process": pure, "before": args.before, "stores": args.stores,
              "runs": []}
    for workers in args.workers:
        env = server_env(tracking_uri=uri, workers=workers, poll_seconds=10)
        # Each server its own fresh event log: impressions (and so frequency caps) never carry over
        # from another server or an earlier worker count.
        for f in BENCH.glob("events-*.db*"):
            f.unlink()
        log = lambda label: {**env, "GUANXI_EVENTS_DB": str(BENCH / f"events-{label}.db")}  # noqa: E731
        servers = {"guanxi": ("guanxi.serving.service:Guanxi", None, log("guanxi")),
                   "guanxi-exact": ("guanxi.serving.service:Guanxi", None, {**log("exact"), "GUANXI_TABLE_MAX_SCORES": "0"}),
                   "trivial": ("trivial_service:Trivial", ROOT / "experiments", env),
                   "trivial-gc": ("trivial_service:Trivial", ROOT / "experiments", {**env, "TRIVIAL_SETTLE_GC": "1"})}
        if cluster is not None:
            servers["guanxi-pg"] = ("guanxi.serving.service:Guanxi", None,
                                    {**env, "GUANXI_EVENTS_DB": cluster.new_database()})
        if before is not None:
            # The code at REF in its own layout (importable_checkout knows each the project has had).
            module, folder = importable_checkout(before, BENCH / "before-staged")
            servers["guanxi-before"] = (f"{module}:Guanxi", folder, log("before"))
        procs: dict[str, object] = {}
        ports: dict[str, int] = {}
        try:
            for label, (service, cwd, server_env_) in servers.items():
                t = time.perf_counter()
                procs[label], ports[label] = start(service, cwd, server_env_, f"{label}-w{workers}", script)
                print(f"  w{workers} {label} ready in {time.perf_counter() - t:.1f} s", flush=True)
            run = side_by_side(ports, args.seconds, args.rounds, script, workers)
            if cluster is not None:
                run["feedback"] = feedback_side_by_side(
                    {label: ports[label] for label in ("guanxi", "guanxi-pg")}, args.seconds, args.rounds, fb_script)
            result["runs"].append(run)
        finally:
            for proc in procs.values():
                stop_server(proc)

    OUT.write_text(json.dumps(result, indent=2))
    print(f"\n{pure['items']} items, policy on; wrk on the same machine\n")
    print("| workers | endpoint | clients | p50 ms | p99 ms | req/s | non-2xx | guanxi/trivial req/s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in result["runs"]:
        for label in [k for k in ("guanxi", "guanxi-pg", "guanxi-exact", "guanxi-before", "trivial", "trivial-gc")
                      if k in run]:
            for r in run[label]:
                ratio = run["throughput_ratio"][label][str(r["connections"])] if label != "trivial" else None
                print(f"| {run['workers']} | {label} | {r['connections']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                      f"{r['req_per_s']:.0f} | {r['non_2xx']} | {'' if ratio is None else f'{ratio:.2f}'} |")

    for run in result["runs"]:
        if "feedback" in run:
            print(f"\n/feedback, batches of 100 events, 8 clients, {run['workers']} worker(s)\n")
            print("| store | acknowledged batches/s | events/s | p50 ms | p99 ms | non-2xx |")
            print("|---|---|---|---|---|---|")
            for label, f in run["feedback"].items():
                print(f"| {label} | {f['batches_per_s']:.0f} | {100 * f['batches_per_s']:.0f} | {f['p50_ms']:.1f} | "
                      f"{f['p99_ms']:.1f} | {f['non_2xx']} |")


if __name__ == "__main__":
    main()
