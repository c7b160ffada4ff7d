"""Dataset statistics and tie-strength AUC for every loader (experiments/README.md table).

Run:  .venv/bin/python experiments/dataset_stats.py
Writes experiments/results/dataset_stats.json and prints the Markdown table.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import time

from guanxi.features.coded import read_truth_ties
from guanxi.features.datasets import load_coded
from guanxi.features.summary import build_features, summarize
from guanxi.features.world import WorldConfig, generate_world
from guanxi.features.world_io import write_world

OUT = Path(__file__).parent / "results" / "dataset_stats.json"


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        write_world(generate_world(WorldConfig(users=10_000, seed=0)), world)
        specs = [(str(world), "guanxi world --users 10000 --seed 0 --out W; guanxi features --data W")]
        specs += [(n, f"guanxi features --data {n}") for n in ("lastfm", "lastfm-sociallgn", "ciao", "yelp")]
        for spec, command in specs:
            start = time.perf_counter()
            data = load_coded(spec)
            feats = build_features(data, truth_ties=read_truth_ties(spec, data) if Path(spec).is_dir() else None)
            row = summarize(data, feats, time.perf_counter() - start)
            row["command"] = command
            rows.append(row)
            print(f"done {row['dataset']}", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))
    print("| dataset | users | official accounts / merchants / content | train / valid / test events "
          "| contacts (undirected) | pair events | inner / outer per user (mean) | no inner circle "
          "| tie label | tie AUC | best single feature (AUC) | Spearman vs truth |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["tie_strength"]
        rho = f"{t['spearman_truth']:.3f}" if t["spearman_truth"] is not None else "–"
        print(f"| {r['dataset']} | {r['users']:,} | {r['official_accounts']:,} / {r['merchants']:,} / "
              f"{r['content']:,} | {r['train_events']:,} / {r['valid_events']:,} / {r['test_events']:,} "
              f"| {r['undirected_ties']:,} | {r['pair_events']:,} | {r['inner_mean']:.1f} / "
              f"{r['outer_mean']:.1f} | {r['no_inner_share']:.1%} | {t['label']} | {t['auc']:.3f} | "
              f"{t['heuristic']} ({t['heuristic_auc']:.3f}) | {rho} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
