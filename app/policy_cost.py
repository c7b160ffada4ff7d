"""What the exposure policy costs, offline: test-split metrics of the served slates with the policy
on and off, side by side (``guanxi evaluate``).

Both sides go through the serving path (:meth:`guanxi.serving.recommender.Recommender.recommend`), one
request per test user with ``k = 20``, no settings and no impressions (a fresh user log), so the
only difference is the policy. "off" is the model's ranking with consumed items left out, which
is what the training evaluation measures for users the model knows.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
from tqdm import tqdm

from guanxi.features.schema import Dataset
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recommender import Recommender
from guanxi.training.metrics import KS, hits_matrix, mean_metrics

K = max(KS)


def _slates(rec: Recommender, users: list[str], policy: PolicyConfig, progress: bool, label: str
            ) -> tuple[np.ndarray, dict[str, float]]:
    """``[n, K]`` item indices (-1 padded) per user, and slate statistics."""
    top = np.full((len(users), K), -1, np.int64)
    n_items = n_comm = n_reason = 0
    reasons: dict[str, int] = {}
    for row, user in enumerate(tqdm(users, desc=f"policy {label}", disable=not progress, unit="user")):
        _, slate = rec.recommend(user, K, policy)
        top[row, :len(slate)] = [s.item_idx for s in slate]
        n_items += len(slate)
        n_comm += sum(s.commercial for s in slate)
        for s in slate:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
            n_reason += 1
    stats = {"items_per_slate": n_items / max(len(users), 1), "commercial_share": n_comm / max(n_items, 1)}
    stats.update({f"reason_{r}": c / max(n_reason, 1) for r, c in sorted(reasons.items())})
    return top, stats


def policy_cost(rec: Recommender, dataset: Dataset, policy: PolicyConfig, progress: bool = True) -> dict:
    """Metrics ``@10/@20`` and slate statistics with the policy ``on`` and ``off``, and ``on - off``.

    Every test user counts (users or items the model does not know still count in the
    denominators). Items the user consumed are left out by the serving path itself.
    """
    test = dataset.test
    if test is None or not len(test):
        raise ValueError(f"{dataset.name}: no test split to evaluate on")
    users = sorted(test["user_id"].astype(str).unique())
    pos = {u: i for i, u in enumerate(users)}
    rows = test["user_id"].astype(str).map(pos).to_numpy()
    items = rec.item_index(test["item_id"].astype(str).tolist())
    pairs = pd.DataFrame({"u": rows, "i": items}).drop_duplicates()
    n_test = np.bincount(pairs["u"], minlength=len(users))
    known = pairs[pairs["i"] >= 0]
    n_items = rec.idmap.num_items
    keys = np.sort(known["u"].to_numpy(np.int64) * n_items + known["i"].to_numpy(np.int64))
    out: dict = {"users": len(users), "k": K}
    for label, cfg in (("off", policy.replace(enabled=False)), ("on", policy.replace(enabled=True))):
        top, stats = _slates(rec, users, cfg, progress, label)
        hits = hits_matrix(top, np.arange(len(users)), keys, n_items)
        out[label] = {**mean_metrics(hits, n_test), **stats}
    out["delta"] = {k: out["on"][k] - out["off"][k] for k in out["on"] if k in out["off"]}
    return out


def format_cost(result: dict) -> str:
    """A side-by-side text table of :func:`policy_cost`'s result."""
    keys = [k for k in result["on"] if k in result["off"]]
    lines = [f"{'metric':<24}{'policy off':>12}{'policy on':>12}{'on - off':>12}"]
    for k in keys:
        lines.append(f"{k:<24}{result['off'][k]:>12.4f}{result['on'][k]:>12.4f}{result['delta'][k]:>+12.4f}")
    return "\n".join(lines)
