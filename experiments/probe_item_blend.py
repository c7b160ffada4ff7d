"""Does the trained model gain from an item-item model beside it? A post-hoc blend, validation only.

    .venv/bin/python experiments/probe_item_blend.py --data ciao-heavy [--seeds 0 1] [--item-model ease]

On the derived split of ``probe.py`` (its *test* is held-out training data; the real test split is
never read), trains ``guanxi`` with today's defaults, fits the item-item model on the same training
interactions (its regulariser chosen on the validation carve, as ``--model ease|itemknn`` does),
then ranks with

    score(u, i) / s_model + w x item_score(u, i) / s_item

for each ``w`` of a grid, where ``s_model`` and ``s_item`` are each score's standard deviation over
the items of 256 validation users (so ``w`` is in comparable units on every dataset); items an EASE
fit does not cover score 0. ``w`` is chosen on the validation carve that ``guanxi train`` used for
early stopping; the derived test is reported for every ``w``, for the chosen one and for the item
model alone. Appends to ``experiments/results/probe_item_blend_<data>.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe import append_invocation, derived_split, weight_curve  # noqa: E402

from guanxi.features.datasets import load_dataset  # noqa: E402
from guanxi.training.config import load_config  # noqa: E402
from guanxi.training.evaluate import evaluate_ranking  # noqa: E402
from guanxi.training.item_models import fit_item_model  # noqa: E402
from guanxi.training.train import make_scorers, train  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WEIGHTS = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)


def _spread(f, users: torch.Tensor) -> float:
    s = f(users)
    return float(s[torch.isfinite(s)].std())


def blend(data: str, seed: int, item_model: str) -> dict:
    derived = derived_split(load_dataset(data), seed)
    result = train(derived, load_config(None, [f"seed={seed}"]), progress=False)
    prep = result.prepared
    score, fallback = make_scorers(result.model, prep, social=True)
    validate = lambda m: evaluate_ranking(m.scores, prep.valid_task, fallback, breakdowns=False)["recall_at_20"]  # noqa: E731
    items, grid = fit_item_model(item_model, prep.train_csr, prep.popularity.numpy(), validate, max_items=20_000)

    def item_score(u: torch.Tensor) -> torch.Tensor:
        s = items.scores(u)
        if items.items is not None:                # EASE over the popular items: the rest score 0
            covered = torch.zeros(s.shape[1], dtype=torch.bool)
            covered[torch.from_numpy(items.items)] = True
            s[:, ~covered] = 0.0
        return s

    sample = torch.from_numpy(prep.valid_task.users()[:256])
    s_model, s_item = _spread(score, sample), _spread(item_score, sample)

    def blended(w: float):
        def f(u: torch.Tensor) -> torch.Tensor:
            s = score(u) / s_model
            if w:
                s = s + w * item_score(u) / s_item
            return s
        return f

    curve, chosen = weight_curve(blended, prep, fallback, WEIGHTS, seed)
    alone = evaluate_ranking(items.scores, prep.test_task, fallback, breakdowns=False)
    return {"seed": seed, "item_model": item_model, "param": items.param, "grid": grid,
            "epochs": result.epochs, "best_epoch": result.best_epoch, "curve": curve,
            "chosen_w": chosen["w"], "base": curve[0], "chosen": chosen,
            "item_alone": {"recall_at_20": alone["recall_at_20"], "ndcg_at_20": alone["ndcg_at_20"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--item-model", choices=["ease", "itemknn"], default="ease")
    args = parser.parse_args()
    rows = [blend(args.data, seed, args.item_model) for seed in args.seeds]
    out = RESULTS / f"probe_item_blend_{Path(args.data).name}.json"
    append_invocation(out, args.data, rows)
    print(f"\n| seed | {args.item_model} alone | w chosen | valid recall@20 (w=0 -> chosen) | derived recall@20 | "
          "derived ndcg@20 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        b, c = r["base"], r["chosen"]
        print(f"| {r['seed']} | {r['item_alone']['recall_at_20']:.4f} | {r['chosen_w']} | "
              f"{b['valid_recall_at_20']:.4f} -> {c['valid_recall_at_20']:.4f} | "
              f"{b['recall_at_20']:.4f} -> {c['recall_at_20']:.4f} | {b['ndcg_at_20']:.4f} -> {c['ndcg_at_20']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
