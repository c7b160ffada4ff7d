"""A serving worker's start: import time, seconds to ready and memory, this code beside an earlier commit.

    .venv/bin/python experiments/bench_worker.py --before GIT_REF [--rounds 5]

Side by side, alternating in each round so that both see the same machine:
1. ``import`` of the service module in a fresh interpreter: wall seconds, peak RSS, and whether
   torch or PyG got loaded;
2. a real one-worker ``bentoml serve`` of the champion in .bench/mlflow.db (the 100k-item world
   of ``bench_serving.py``, which builds it when missing): seconds from launch to ``/readyz``, and
   the worker's RSS once ready (the process that imported the service, not the supervisor).
The earlier commit is checked out in a git worktree under .bench/worker-before.
Writes experiments/results/bench_worker.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from guanxi.app.package_tree import importable_checkout

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "bench_worker.json"
BENCH = ROOT / ".bench"

IMPORT_PROBE = ("import resource, sys, time; t = time.perf_counter(); import {module}; "
                "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
                "int('torch' in sys.modules), int('torch_geometric' in sys.modules))")


def checkout(ref: str) -> Path:
    where = BENCH / "worker-before"
    subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(where), ref], cwd=ROOT, check=True)
    return where


def layout(code: Path | None) -> tuple[str, Path | None]:
    """(service module, folder to import it from) for the current code (None) or a checkout."""
    if code is None:
        return "guanxi.serving.service", None
    return importable_checkout(code, BENCH / "worker-before-staged")


def import_once(code: Path | None) -> dict:
    module, path = layout(code)
    env = {"PYTHONPATH": str(path)} if path else {}
    done = subprocess.run([sys.executable, "-c", IMPORT_PROBE.format(module=module)], cwd=path or ROOT,
                          capture_output=True, text=True, check=True, env={**os.environ, **env})
    seconds, rss, torch, pyg = done.stdout.split()
    return {"seconds": float(seconds), "rss_mb": float(rss), "torch": bool(int(torch)), "pyg": bool(int(pyg))}


def serve_once(code: Path | None, uri: str) -> dict:
    from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready

    module, path = layout(code)
    env = {**server_env(tracking_uri=uri, workers=1, poll_seconds=0),
           "GUANXI_EVENTS_DB": str(BENCH / "worker-events.db")}
    port = free_port()
    t = time.perf_counter()
    proc = start_server("127.0.0.1", port, env, log=BENCH / "worker.log", service=f"{module}:Guanxi", cwd=path)
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=600)
        ready = time.perf_counter() - t
        # The largest process under the server is the worker that loaded the model.
        workers = psutil.Process(proc.pid).children(recursive=True)
        rss = max(p.memory_info().rss for p in workers) / 2**20 if workers else float("nan")
    finally:
        stop_server(proc)
    return {"ready_seconds": ready, "worker_rss_mb": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="GIT_REF")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "experiments"))
    from bench_serving import prepare

    _, uri = prepare(20_000, 5, 600)
    before = checkout(args.before)
    rows: dict[str, list[dict]] = {"now": [], "before": []}
    for r in range(args.rounds):
        for label, code in (("now", None), ("before", before)):
            row = {**import_once(code), **serve_once(code, uri)}
            rows[label].append(row)
            print(f"round {r + 1} {label}: {row}", flush=True)
    summary = {}
    for label, got in rows.items():
        summary[label] = {k: statistics.median(x[k] for x in got)
                          for k in ("seconds", "rss_mb", "ready_seconds", "worker_rss_mb")}
        summary[label].update(torch=got[0]["torch"], pyg=got[0]["pyg"])
    result = {"before": args.before, "rounds": args.rounds, "runs": rows, "medians": summary}
    OUT.write_text(json.dumps(result, indent=2))
    print("| code | import s | import peak RSS MB | torch / PyG loaded | launch to ready s | worker RSS MB |")
    print("|---|---:|---:|---|---:|---:|")
    for label, m in summary.items():
        print(f"| {label} | {m['seconds']:.2f} | {m['rss_mb']:.0f} | {m['torch']} / {m['pyg']} "
              f"| {m['ready_seconds']:.1f} | {m['worker_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
