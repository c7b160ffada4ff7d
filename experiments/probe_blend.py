"""Does a trained model gain from its users' contacts at any weight? A post-hoc blend, validation only.

    .venv/bin/python experiments/probe_blend.py --data ciao [--seeds 0 1] [--set use_social=false]

On the derived split of ``probe.py`` (its *test* is held-out training data; the real test split is
never read), trains ``guanxi`` with the given overrides, then ranks with

    score(u, i) + w x log1p(number of u's listed contacts who engaged with i in training)

for each ``w`` of a grid: every listed tie counts 1 (no learnt strength, so nothing of the user's
own training items leaks in). ``w`` is chosen on the validation carve that ``guanxi train`` used for
early stopping; the derived test is reported for every ``w`` and for the chosen one. Appends to
``experiments/results/probe_blend_<data>.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe import append_invocation, derived_split, weight_curve  # noqa: E402

from guanxi.features.datasets import load_dataset  # noqa: E402
from guanxi.training.config import load_config  # noqa: E402
from guanxi.training.support import social_support  # noqa: E402
from guanxi.training.train import Prepared, make_scorers, train  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


def listed_support(prep: Prepared) -> sp.csr_matrix:
    """``[U, I]`` ``log1p`` of how many of each user's listed contacts (either direction, weight 1)
    engaged with each item in training."""
    n = prep.idmap.num_users
    a, b = prep.data.tie_user.astype(np.int64), prep.data.tie_friend.astype(np.int64)
    keep = a != b
    ties = sp.csr_matrix((np.ones(2 * keep.sum()), (np.concatenate([a[keep], b[keep]]),
                                                    np.concatenate([b[keep], a[keep]]))), shape=(n, n))
    ties.data[:] = 1.0
    return social_support(ties.tocsr(), prep.train_csr)


def blend(data: str, seed: int, overrides: list[str]) -> dict:
    derived = derived_split(load_dataset(data), seed)
    result = train(derived, load_config(None, [f"seed={seed}", *overrides]), progress=False)
    prep = result.prepared
    score, fallback = make_scorers(result.model, prep, social=True)
    support = listed_support(prep)

    def blended(w: float):
        def f(u: torch.Tensor) -> torch.Tensor:
            s = score(u)
            if w:
                s += w * torch.from_numpy(support[u.numpy()].toarray())
            return s
        return f

    curve, chosen = weight_curve(blended, prep, fallback, WEIGHTS, seed)
    return {"seed": seed, "overrides": overrides, "epochs": result.epochs, "best_epoch": result.best_epoch,
            "curve": curve, "chosen_w": chosen["w"], "base": curve[0], "chosen": chosen}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], help="training overrides")
    args = parser.parse_args()
    rows = [blend(args.data, seed, args.set) for seed in args.seeds]
    out = RESULTS / f"probe_blend_{Path(args.data).name}.json"
    append_invocation(out, args.data, rows)
    print("\n| seed | w chosen | valid recall@20 (w=0 -> chosen) | derived recall@20 | derived ndcg@20 |")
    print("|---|---|---|---|---|")
    for r in rows:
        b, c = r["base"], r["chosen"]
        print(f"| {r['seed']} | {r['chosen_w']} | {b['valid_recall_at_20']:.4f} -> {c['valid_recall_at_20']:.4f} | "
              f"{b['recall_at_20']:.4f} -> {c['recall_at_20']:.4f} | {b['ndcg_at_20']:.4f} -> {c['ndcg_at_20']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
