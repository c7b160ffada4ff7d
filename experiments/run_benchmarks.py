"""Run the experiment plan (experiments/plan.yaml): one `guanxi train` per row, tracked in MLflow.

    .venv/bin/python experiments/run_benchmarks.py [--only NAME-OR-SUBSTRING ...] [--tracking-uri URI]

Each row writes experiments/results/runs/<name>.json (the metrics JSON) and an MLflow run tagged
with the row's name and variant; rows whose JSON already exists are skipped (--force re-runs).
Then `experiments/results_table.py` builds the results table from the MLflow runs.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def command_for(row: dict, tracking_uri: str) -> list[str]:
    cmd = [str(ROOT / ".venv" / "bin" / "guanxi"), "train", "--data", str(row["data"]),
           "--model", row["model"], "--no-progress", "--tracking-uri", tracking_uri,
           "--metrics-json", str(HERE / "results" / "runs" / f"{row['name']}.json"),
           "--tag", f"bench={row['name']}", "--tag", f"variant={row.get('variant', 'default')}"]
    for item in [f"seed={row.get('seed', 0)}", *row.get("set", [])]:
        cmd += ["--set", item]
    return cmd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=str(HERE / "plan.yaml"))
    parser.add_argument("--only", nargs="*", help="run rows whose name contains any of these (a value that "
                        "is a row's whole name selects that row alone)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    args = parser.parse_args()
    rows = yaml.safe_load(Path(args.plan).read_text())["runs"]
    names = {row["name"] for row in rows}
    for row in rows:
        if args.only and not any(s == row["name"] if s in names else s in row["name"] for s in args.only):
            continue
        out = HERE / "results" / "runs" / f"{row['name']}.json"
        if out.exists() and not args.force:
            print(f"skip {row['name']} (have {out.name})", flush=True)
            continue
        if "world" in row and not (ROOT / row["data"] / "world.json").is_file():
            w = row["world"]
            subprocess.run([str(ROOT / ".venv" / "bin" / "guanxi"), "world", "--users", str(w["users"]),
                            "--seed", str(w["seed"]), "--out", str(ROOT / row["data"])], cwd=ROOT, check=True)
        cmd = command_for(row, args.tracking_uri)
        print(f"run {row['name']}: {shlex.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT)
        print(f"  -> exit {done.returncode} in {time.perf_counter() - start:.0f}s", flush=True)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
