"""The results table (dataset x model x metrics, seeds, train time), built from the MLflow runs.

    .venv/bin/python experiments/results_table.py [--tracking-uri sqlite:///mlflow.db]

Reads every run tagged ``bench`` (experiments/run_benchmarks.py sets it), groups by dataset,
model and variant, and reports the mean and standard deviation over seeds. The last column names
every config key where a run differs from what its plan row resolves to under today's defaults
(empty = the row is current); a run that finished inside today's ``time_budget`` is not flagged
for it, nor world rows (their own validation split) for the carve keys. Writes
experiments/results/results.md and prints it.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
import yaml

from training.config import load_config

HERE = Path(__file__).resolve().parent
METRICS = ("recall_at_10", "ndcg_at_10", "recall_at_20", "ndcg_at_20")
# Keys older runs did not log, with the behaviour they had before the key existed.
LEGACY = {"valid_max_per_user": 0, "fanouts": ""}
# Keys that only shape the carved validation: moot for world rows, which ship their own.
CARVE = ("valid_fraction", "valid_max_per_user")


def stale_keys(run: mlflow.entities.Run, row: dict | None) -> list[str]:
    """Config keys where ``run`` differs from its plan ``row`` resolved under today's defaults.

    Args:
        run: a finished benchmark run (its params are the resolved config it trained with).
        row: its plan.yaml row, or None when the row is no longer in the plan.

    Returns:
        ``key=old`` entries, sorted; empty when the run matches today's defaults.
    """
    if row is None:
        return ["not in plan"]
    overrides = [f"model={row['model']}", f"seed={row.get('seed', 0)}", *row.get("set", [])]
    current = asdict(load_config(None, overrides))
    params, out = run.data.params, []
    for key, now in current.items():
        if key in CARVE and "world" in row:
            continue
        then = yaml.safe_load(params[key]) if key in params else LEGACY.get(key, now)
        if then is None:
            then = ""
        if key == "time_budget" and then != now and now and \
                run.data.metrics.get("train_seconds", np.inf) < now:
            continue  # finished before today's budget could have stopped it
        same = np.isclose(float(then), float(now)) if isinstance(now, float) and not isinstance(then, str) \
            else str(then) == str(now)
        if not same:
            out.append(f"{key}={then}")
    return sorted(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=f"sqlite:///{HERE.parent / 'mlflow.db'}")
    parser.add_argument("--out", default=str(HERE / "results" / "results.md"))
    args = parser.parse_args()
    mlflow.set_tracking_uri(args.tracking_uri)
    plan = {r["name"]: r for r in yaml.safe_load((HERE / "plan.yaml").read_text())["runs"]}
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.bench != ''",
                              output_format="list")
    latest: dict[str, mlflow.entities.Run] = {}
    for run in runs:  # a re-run replaces the older run of the same plan row
        name = run.data.tags["bench"]
        if name not in latest or run.info.start_time > latest[name].info.start_time:
            latest[name] = run
    groups: dict[tuple[str, str, str], list] = {}
    for name, run in latest.items():
        key = (run.data.tags.get("dataset", "?"), run.data.tags.get("model", "?"),
               run.data.tags.get("variant", "default"))
        groups.setdefault(key, []).append((name, run))
    lines = ["| dataset | model | variant | seeds | " + " | ".join(m.replace("_at_", "@") for m in METRICS)
             + " | train s (to best) | re-run | differs from today's defaults |", "|---" * (len(METRICS) + 7) + "|"]
    for (dataset, model, variant), members in sorted(groups.items()):
        vals = {m: np.array([r.data.metrics.get(m, np.nan) for _, r in members]) for m in METRICS}
        cells = [f"{v.mean():.4f} ± {v.std():.4f}" if len(v) > 1 else f"{v.mean():.4f}" for v in vals.values()]
        train_s = np.mean([r.data.metrics.get("train_seconds", np.nan) for _, r in members])
        best_s = np.mean([r.data.metrics.get("seconds_to_best", np.nan) for _, r in members])
        names = sorted(n for n, _ in members)
        rerun = ".venv/bin/python experiments/run_benchmarks.py --force --only " + " ".join(shlex.quote(n) for n in names)
        seeds = ",".join(sorted(r.data.params.get("seed", "?") for _, r in members))
        stale = sorted({k for n, r in members for k in stale_keys(r, plan.get(n))})
        lines.append(f"| {dataset} | {model} | {variant} | {seeds} | " + " | ".join(cells)
                     + f" | {train_s:.0f} ({best_s:.0f}) | `{rerun}` | {', '.join(stale)} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    missing = sorted(set(plan) - set(latest))
    if missing:
        print(f"not run yet: {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
