"""Probe model and config changes on any dataset without touching its test split.

    .venv/bin/python experiments/probe.py --data yelp [--seeds 0] [--variants default loss=multinomial model=ease ...]

The protocol, one level down from the real one: a derived split whose *test* is held-out training
data. A dataset with its own validation split (a world) uses that validation as the derived test;
one without carves each user's validation from train (seed ``100 + seed``, as ``guanxi train``
would) and uses it as the derived test. ``guanxi train``'s own code then carves validation from the
derived training set for early stopping and tuning. The real test split is never read.

Each variant is ``--set``-style ``key=value`` overrides, comma-separated (``default`` = none). Per
variant and seed: derived-test recall@20 and ndcg@20, training seconds, seconds to the best
validation, epochs. Appends to ``experiments/results/probe_<data>.json`` (one entry per invocation)
and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from guanxi.features.coded import CodedDataset, coded_from_dataset
from guanxi.features.datasets import load_dataset
from guanxi.features.schema import Dataset
from guanxi.features.split import carve_validation
from guanxi.training.config import load_config
from guanxi.training.evaluate import evaluate_ranking
from guanxi.training.train import Prepared, train

RESULTS = Path(__file__).parent / "results"


def derived_split(dataset: Dataset, seed: int, fraction: float = 0.1) -> CodedDataset:
    """The derived split (module doc), as codes: held-out training data (the dataset's own
    validation, else ``fraction`` carved from train) as the test split, no validation."""
    carved = carve_validation(coded_from_dataset(dataset), fraction, 100 + seed)
    return replace(carved, name=dataset.name + "-derived", test=carved.valid,
                   valid=carved.valid.take(np.zeros(len(carved.valid), bool)))


def run(data: str, variants: list[str], seeds: list[int], base: list[str]) -> list[dict]:
    dataset = load_dataset(data)
    rows = []
    for seed in seeds:
        derived = derived_split(dataset, seed)
        for variant in variants:
            overrides = [f"seed={seed}", *base] + ([] if variant == "default" else variant.split(","))
            config = load_config(None, overrides)
            start = time.perf_counter()
            result = train(derived, config, progress=False)
            m = result.metrics
            row = {"variant": variant, "seed": seed, "recall_at_20": m["recall_at_20"], "ndcg_at_20": m["ndcg_at_20"],
                   "valid_recall_at_20": m["valid"]["recall_at_20"], "train_seconds": round(result.train_seconds, 1),
                   "seconds_to_best": round(result.seconds_to_best, 1), "epochs": result.epochs,
                   "best_epoch": result.best_epoch, "stopped": result.stopped,
                   "wall_seconds": round(time.perf_counter() - start, 1)}
            if "chosen_param" in m:
                row["chosen_param"] = m["chosen_param"]
            if getattr(result.model, "support_weight", None) is not None:  # after the validation rescale
                row["support_weight"] = round(result.model.support_weight.item(), 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def weight_curve(blended: Callable[[float], Callable], prep: Prepared, fallback, weights: tuple[float, ...],
                 seed: int) -> tuple[list[dict], dict]:
    """Rank with ``blended(w)`` for each ``w`` of ``weights``: validation and derived-test recall@20
    (and test ndcg@20) per weight, printed as they come; the chosen row is the best on validation
    (the first on a tie)."""
    curve = []
    for w in weights:
        v = evaluate_ranking(blended(w), prep.valid_task, fallback, breakdowns=False)
        t = evaluate_ranking(blended(w), prep.test_task, fallback, breakdowns=False)
        curve.append({"w": w, "valid_recall_at_20": v["recall_at_20"], "recall_at_20": t["recall_at_20"],
                      "ndcg_at_20": t["ndcg_at_20"]})
        print(json.dumps({"seed": seed, **curve[-1]}), flush=True)
    return curve, max(curve, key=lambda r: r["valid_recall_at_20"])


def append_invocation(out: Path, data: str, rows: list[dict]) -> None:
    """Append this invocation (date, arguments, rows) to the probe's results file ``out``, which
    keeps every earlier one."""
    history = json.loads(out.read_text()) if out.is_file() else {"data": data, "invocations": []}
    history["invocations"].append({"date": time.strftime("%Y-%m-%d %H:%M"), "argv": sys.argv[1:], "rows": rows})
    out.write_text(json.dumps(history, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--variants", nargs="+", default=["default"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], help="overrides applied to every variant")
    args = parser.parse_args()
    rows = run(args.data, args.variants, args.seeds, args.set)
    name = Path(args.data).name
    out = RESULTS / f"probe_{name}.json"
    append_invocation(out, args.data, rows)
    print("\n| variant | seed | derived recall@20 | derived ndcg@20 | train s (to best) | epochs (best) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | {r['recall_at_20']:.4f} | {r['ndcg_at_20']:.4f} | "
              f"{r['train_seconds']:.0f} ({r['seconds_to_best']:.0f}) | {r['epochs']} ({r['best_epoch']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
