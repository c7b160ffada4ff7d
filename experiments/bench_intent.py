"""Intent measured against the truth: version 2 worlds, intent episodes on and off, three seeds each.

    .venv/bin/python experiments/bench_intent.py [--users 10000] [--seeds 0 1 2]

For each world (``guanxi world --version 2 [--no-episodes]``, cached in .worlds/) one ``guanxi train``
with today's defaults, tracked in .intent/mlflow.db (each run logs the intent metrics, ``intent.png``
and the pathways). Read from each run's metrics JSON (the test split; nothing is chosen on it):
(a) the AUC of the inferred economic probability at the start of the test period against each
user's true episode then; (b) recall@20 / ndcg@20 of the held-out events, grouped by their true
intent, ranking with intent = truth, ``auto`` and ``any``; the gains over ``any`` and the share of
the truth's gain that ``auto`` recovers. With episodes off, ``truth`` is each user's true
propensity and ``auto`` must equal ``any`` within the seeds' spread.
Writes experiments/results/intent.json, experiments/results/intent.png and prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results"
WORK = ROOT / ".intent"


def run(users: int, seed: int, episodes: bool) -> dict:
    name = f"world-{users}-s{seed}-v2" + ("" if episodes else "-noep")
    world = ROOT / ".worlds" / name
    guanxi = str(Path(sys.executable).with_name("guanxi"))
    if not (world / "world.json").is_file():
        subprocess.run([guanxi, "world", "--users", str(users), "--seed", str(seed), "--version", "2",
                        "--out", str(world)] + ([] if episodes else ["--no-episodes"]), check=True)
    metrics = WORK / f"{name}.json"
    if not metrics.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run([guanxi, "train", "--data", str(world), "--no-progress", "--metrics-json", str(metrics),
                        "--tracking-uri", f"sqlite:///{WORK / 'mlflow.db'}", "--experiment", "intent"],
                       check=True, cwd=WORK)
    m = json.loads(metrics.read_text())
    t = m["intent"]["truth"]
    row = {"world": name, "seed": seed, "episodes": episodes, "recall_at_20": m["recall_at_20"],
           "beta": m["intent"]["beta"], "auc": t.get("auc"), "true_economic_share": t["true_economic_share"]}
    for mode in ("any", "auto", "truth"):
        for group in ("overall", "economic", "social"):
            if group in t[mode]:
                row[f"{mode}_{group}_recall_at_20"] = t[mode][group]["recall_at_20"]
                row[f"{mode}_{group}_ndcg_at_20"] = t[mode][group]["ndcg_at_20"]
    for group, g in t["gain"].items():
        row.update({f"{k}_{group}": v for k, v in g.items()})
    return row


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "n/a"
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f}"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, episodes in zip(axes, (True, False)):
        sel = [r for r in rows if r["episodes"] == episodes]
        groups = ("overall", "economic", "social")
        for j, (mode, color) in enumerate((("any", "#999999"), ("auto", "#4c72b0"), ("truth", "#dd8452"))):
            means = [np.mean([r[f"{mode}_{g}_recall_at_20"] for r in sel]) for g in groups]
            sds = [np.std([r[f"{mode}_{g}_recall_at_20"] for r in sel]) for g in groups]
            ax.bar(np.arange(3) + (j - 1) * 0.25, means, 0.25, yerr=sds, color=color, label=f"intent = {mode}")
        ax.set_xticks(np.arange(3), [f"{g} events" for g in groups])
        ax.set_title(f"episodes {'on' if episodes else 'off'} ({len(sel)} seeds)", fontsize=10)
    axes[0].set_ylabel("recall@20 (test)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = [run(args.users, s, ep) for ep in (True, False) for s in args.seeds]
    (OUT / "intent.json").write_text(json.dumps(rows, indent=2))
    plot(rows, OUT / "intent.png")
    for episodes in (True, False):
        sel = [r for r in rows if r["episodes"] == episodes]
        print(f"\nepisodes {'on' if episodes else 'off'}: {len(sel)} seeds; AUC {_mean_sd([r['auc'] for r in sel])}, "
              f"beta {[r['beta'] for r in sel]}")
        print("| events | any recall@20 | auto | truth | truth over any | auto over any | auto recovers |")
        print("|---|---|---|---|---|---|---|")
        for g in ("overall", "economic", "social"):
            print(f"| {g} | {_mean_sd([r[f'any_{g}_recall_at_20'] for r in sel])} | "
                  f"{_mean_sd([r[f'auto_{g}_recall_at_20'] for r in sel])} | "
                  f"{_mean_sd([r[f'truth_{g}_recall_at_20'] for r in sel])} | "
                  f"{_mean_sd([r[f'truth_over_any_{g}'] for r in sel])} | "
                  f"{_mean_sd([r[f'auto_over_any_{g}'] for r in sel])} | "
                  f"{_mean_sd([r[f'auto_recovers_{g}'] for r in sel])} |")


if __name__ == "__main__":
    main()
