"""Do a dataset's ties carry ranking signal of their own? Validation only.

    .venv/bin/python experiments/probe_ties.py [--data .worlds/world-10000-s0 lastfm ciao yelp]

For each dataset, on the validation split ``guanxi train`` would use (the carve from train where
the data has none; the test split is never read), ranks every validation user's items three ways
and prints recall@20 / ndcg@20:

- ``popular``: training popularity;
- ``friends``: what the user's listed contacts engaged with in training, each contact weight 1,
  popularity breaking ties (the cold-start fallback's scorer, ``circle_scores``);
- ``circles``: the same over guanxi's circle weights (inner ``inner_weight x strength``, outer
  ``outer_weight x strength``).

Also: the share of validation users with any contact, and the share of validation pairs whose item
some contact engaged with in training (what the ties could reach at most). Writes
experiments/results/probe_ties.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from guanxi.features.datasets import load_dataset
from guanxi.training.adjacency import circle_scores
from guanxi.training.config import load_config
from guanxi.training.evaluate import evaluate_ranking
from guanxi.training.train import prepare

OUT = Path(__file__).parent / "results" / "probe_ties.json"


def probe(name: str) -> dict:
    dataset = load_dataset(name)
    # lightgcn-s lists every tie with weight 1; guanxi weighs them by circle and strength.
    listed = prepare(dataset, load_config(None, ["model=lightgcn-s", "layers=0"]))
    circled = prepare(dataset, load_config(None, ["layers=0", "use_social=true"]))
    task = listed.valid_task
    pop = listed.popularity
    row: dict = {"data": name}
    scorers = {
        "popular": lambda u: pop[None, :].repeat(len(u), 1),
        "friends": lambda u: circle_scores(listed.social_csr, listed.train_csr, pop, u),
        "circles": lambda u: circle_scores(circled.social_csr, circled.train_csr, pop, u),
    }
    for key, score in scorers.items():
        m = evaluate_ranking(score, task, breakdowns=False)
        row[key] = {"recall_at_20": round(m["recall_at_20"], 4), "ndcg_at_20": round(m["ndcg_at_20"], 4)}
    users = np.asarray(task.users())
    has = np.diff(listed.social_csr.indptr)[users] > 0
    row["valid_users"] = int(len(users))
    row["with_contacts"] = round(float(has.mean()), 3)
    has_circle = np.diff(circled.social_csr.indptr)[users] > 0
    row["with_circle_weights"] = round(float(has_circle.mean()), 3)
    reach = (listed.social_csr @ listed.train_csr).tocsr()
    hit = np.asarray(reach[task.test_user, task.test_item]).ravel() > 0
    row["pairs_reached_by_contacts"] = round(float(hit.mean()), 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[".worlds/world-10000-s0", "lastfm", "ciao", "yelp"])
    args = parser.parse_args()
    rows = [probe(name) for name in args.data]
    print("| data | popular | friends | circles | users with contacts | with circle weights | pairs reached |")
    print("|---|---|---|---|---:|---:|---:|")
    for r in rows:
        cell = lambda k: f"{r[k]['recall_at_20']:.4f} / {r[k]['ndcg_at_20']:.4f}"
        print(f"| {r['data']} | {cell('popular')} | {cell('friends')} | {cell('circles')} | {r['with_contacts']:.1%} "
              f"| {r['with_circle_weights']:.1%} | {r['pairs_reached_by_contacts']:.1%} |")
    OUT.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
