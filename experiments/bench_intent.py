"""Intent measured against the truth: version 2 worlds, intent episodes on and off, three seeds each.

    .venv/bin/python experiments/bench_intent.py [--users 10000] [--seeds 0 1 2]

For each world (``guanxi world --version 2 [--no-episodes]``, cached in .worlds/) one ``guanxi train``
with today's defaults, tracked in .intent/mlflow.db (each run logs the intent metrics, ``intent.png``
and the pathways). Read from each run's metrics JSON (the test split; nothing is chosen on it):
(a) the AUC of the inferred economic probability against each user's true episode; (b) recall@20 /
ndcg@20 of the held-out events, grouped by their true intent, ranking with intent = ``truth``,
``auto``, ``any`` and ``oracle`` (the filter with the world's own parameters: the most a better fit
of it could give); the gains over ``any`` and the share of the truth's gain that ``auto`` (and
``oracle``) recover. Both protocols of training/intent_truth.py: every user ranked once at the
start of the test period, and every held-out event ranked at its own moment as served (``ev_``
keys). With episodes off, ``truth`` is each user's true propensity and ``auto`` must equal ``any``
within the seeds' spread.
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
MODES = ("any", "auto", "oracle", "truth")


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
    i = m["intent"]
    t = i["truth"]
    row = {"world": name, "seed": seed, "episodes": episodes, "recall_at_20": m["recall_at_20"],
           "beta": i["beta"], "rate_per_day": i["rate_per_day"], "fitted_rate_per_day": i.get("fitted_rate_per_day"),
           "true_economic_share": t["true_economic_share"]}
    for prefix, block in (("", t), ("ev_", t["per_event"])):
        row[f"{prefix}auc"] = block.get("auc")
        row[f"{prefix}oracle_auc"] = block.get("oracle_auc")
        for mode in MODES:
            for group in ("overall", "economic", "social"):
                if group in block.get(mode, {}):
                    row[f"{prefix}{mode}_{group}_recall_at_20"] = block[mode][group]["recall_at_20"]
                    row[f"{prefix}{mode}_{group}_ndcg_at_20"] = block[mode][group]["ndcg_at_20"]
        for group, g in block["gain"].items():
            row.update({f"{prefix}{k}_{group}": v for k, v in g.items()})
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

    colors = {"any": "#999999", "auto": "#4c72b0", "oracle": "#55a868", "truth": "#dd8452"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharey="row")
    for r_, (prefix, protocol) in enumerate((("", "once per user, at the start"), ("ev_", "per event, as served"))):
        for ax, episodes in zip(axes[r_], (True, False)):
            sel = [r for r in rows if r["episodes"] == episodes]
            groups = ("overall", "economic", "social")
            modes = [m for m in MODES if all(f"{prefix}{m}_overall_recall_at_20" in r for r in sel)]
            width = 0.8 / len(modes)
            for j, mode in enumerate(modes):
                vals = [[r[f"{prefix}{mode}_{g}_recall_at_20"] for r in sel] for g in groups]
                ax.bar(np.arange(3) + (j - (len(modes) - 1) / 2) * width, [np.mean(v) for v in vals], width,
                       yerr=[np.std(v) for v in vals], color=colors[mode], label=f"intent = {mode}")
            ax.set_xticks(np.arange(3), [f"{g} events" for g in groups])
            ax.set_title(f"{protocol}; episodes {'on' if episodes else 'off'} ({len(sel)} seeds)", fontsize=10)
        axes[r_][0].set_ylabel("recall@20 (test)")
    axes[0][0].legend(fontsize=8)
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
    for prefix, protocol in (("", "once per user, at the start of the test period"), ("ev_", "per event, as served")):
        print(f"\n## {protocol}")
        for episodes in (True, False):
            sel = [r for r in rows if r["episodes"] == episodes]
            print(f"\nepisodes {'on' if episodes else 'off'}: {len(sel)} seeds; AUC {_mean_sd([r[prefix + 'auc'] for r in sel])}, "
                  f"with the world's parameters {_mean_sd([r[prefix + 'oracle_auc'] for r in sel])}; "
                  f"beta {[r['beta'] for r in sel]}, rate a day {[round(r['rate_per_day'], 3) for r in sel]}")
            print("| events | any recall@20 | auto | oracle | truth | truth over any | auto over any | auto recovers "
                  "| oracle recovers |")
            print("|---|---|---|---|---|---|---|---|---|")
            for g in ("overall", "economic", "social"):
                print(f"| {g} | " + " | ".join(_mean_sd([r.get(f"{prefix}{m}_{g}_recall_at_20") for r in sel])
                                               for m in MODES) + " | "
                      + " | ".join(_mean_sd([r.get(f"{prefix}{k}_{g}") for r in sel])
                                   for k in ("truth_over_any", "auto_over_any", "auto_recovers", "oracle_recovers"))
                      + " |")

if __name__ == "__main__":
    main()
