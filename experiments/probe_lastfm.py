"""Probe changes to guanxi's defaults on LastFM without touching its test split.

    .venv/bin/python experiments/probe_lastfm.py [--seeds 0 1] [--variants default dim=128 ...]

The protocol, one level down from the real one: each user's carved validation of the LastFM
(SocialLGN split) training set becomes the *test* of a derived split (seed ``100 + seed``); the
derived split's training set is carved again for early stopping, exactly as ``guanxi train``
does. Every number here therefore comes from training data; the real test split is never read.

For each variant (``--set``-style ``key=value`` overrides, comma-separated; ``default`` = none)
and seed it trains guanxi and reports the derived test's recall@20 and ndcg@20 twice:

- ``train_graph``: the best-validation checkpoint propagated over the graph it was trained on
  (what ``guanxi train`` reports);
- ``known_graph``: the same parameters propagated over every known interaction (train plus the
  carved validation), the graph serving would hold.

Writes ``experiments/results/probe_lastfm.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from features.datasets import load_dataset
from features.graph import interaction_pairs
from features.schema import Dataset
from features.split import carve_validation
from training.adjacency import build_adjacency, interaction_weights, owner_edges, social_edges
from training.config import TrainConfig, load_config
from training.evaluate import evaluate_ranking
from training.train import TrainResult, make_scorers, train

OUT = Path(__file__).parent / "results" / "probe_lastfm.json"
DEFAULT_VARIANTS = ["default", "dim=128", "layers=2", "layers=4", "negatives=4096"]


def derived_split(dataset: Dataset, seed: int, fraction: float = 0.1) -> Dataset:
    """``dataset`` with its carved validation as the test split and no validation (the real
    test split dropped)."""
    carved = carve_validation(dataset, fraction, 100 + seed)
    return Dataset(dataset.name + "-derived", carved.users, carved.items, carved.ties, carved.pair_events,
                   carved.train, carved.valid.iloc[:0], carved.valid)


def known_graph_metrics(result: TrainResult, config: TrainConfig) -> dict:
    """Derived-test metrics of ``result``'s checkpoint propagated over train + carved validation."""
    prep = result.prepared
    known = pd.concat([prep.dataset.train, prep.dataset.valid], ignore_index=True)
    ku, ki = interaction_pairs(known, prep.idmap)
    adjacency = build_adjacency(config, prep.idmap, ku, ki,
                                interaction_weights(config, known, prep.idmap, ku, ki),
                                social_edges(config, prep.idmap, prep.dataset.ties, prep.circles),
                                owner_edges(config, prep.dataset.items, prep.idmap))
    trained = result.model.adjacency
    result.model.adjacency = adjacency
    try:
        score, fallback = make_scorers(result.model, prep, social=True)
        return evaluate_ranking(score, prep.test_task, fallback, breakdowns=False)
    finally:
        result.model.adjacency = trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    dataset = load_dataset("lastfm-sociallgn")
    rows = []
    for variant in args.variants:
        overrides = [] if variant == "default" else variant.split(",")
        for seed in args.seeds:
            config = load_config(None, overrides + [f"seed={seed}"])
            start = time.perf_counter()
            result = train(derived_split(dataset, seed), config, progress=False)
            known = known_graph_metrics(result, config)
            row = {"variant": variant, "seed": seed, "best_epoch": result.best_epoch,
                   "seconds": round(time.perf_counter() - start, 1),
                   "valid_recall_at_20": result.metrics["valid"]["recall_at_20"],
                   "train_graph": {k: result.metrics[k] for k in ("recall_at_20", "ndcg_at_20")},
                   "known_graph": {k: known[k] for k in ("recall_at_20", "ndcg_at_20")}}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    args.out.write_text(json.dumps({"protocol": "LastFM SocialLGN train; derived test = carved validation "
                                                "(seed 100 + seed); real test never read", "rows": rows},
                                   indent=2))
    print("| variant | seed | best epoch | s | valid r@20 | derived test r@20 / n@20 (train graph) | "
          "(known graph) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        tg, kg = r["train_graph"], r["known_graph"]
        print(f"| {r['variant']} | {r['seed']} | {r['best_epoch']} | {r['seconds']:.0f} | "
              f"{r['valid_recall_at_20']:.4f} | {tg['recall_at_20']:.4f} / {tg['ndcg_at_20']:.4f} | "
              f"{kg['recall_at_20']:.4f} / {kg['ndcg_at_20']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
