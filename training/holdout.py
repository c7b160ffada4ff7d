"""Score any served model on a holdout of events, the same way for every model (retraining gate).

Two models trained on different data know different users, items and histories, so both are
judged through the serving path (:meth:`serving.recommender.Recommender.score`) with one shared
exclusion set: every (user, item) pair known before the holdout. Full ranking over each model's
own catalogue; an item a model does not know can only count as a miss. Every holdout user counts
(users a model does not know get its fallback).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from features.schema import ITEM_KINDS
from serving.recommender import Recommender
from training.metrics import KS, METRIC_NAMES, mean_metrics

SPARSITY_GROUPS = (("<10", 0, 10), ("10-49", 10, 50), (">=50", 50, None))


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    out = np.full(max(KS), -1, np.int64)
    finite = top[np.isfinite(scores[top])]
    out[:len(finite)] = finite
    return out


def evaluate_served(rec: Recommender, holdout: pd.DataFrame, known: pd.DataFrame,
                    progress: bool = False) -> dict:
    """Metrics ``@10/@20`` on ``holdout``, with ``breakdowns`` by item kind (ranking within the kind)
    and by sparsity group (the user's known interactions).

    Args:
        rec: the model to judge.
        holdout: events with ``user_id``, ``item_id`` (duplicates ignored).
        known: events known before the holdout (excluded from every ranking).
    """
    test = holdout[["user_id", "item_id"]].astype(str).drop_duplicates()
    known = known[["user_id", "item_id"]].astype(str).drop_duplicates()
    known_by_user = {u: g["item_id"].to_numpy() for u, g in known.groupby("user_id")}
    users = sorted(test["user_id"].unique())
    kinds = rec.kinds
    width = max(KS)
    rows: dict[str, list] = {"all": []}
    rows.update({f"kind_{k}": [] for k in ITEM_KINDS})
    n_known = np.zeros(len(users), np.int64)
    for row, (user, group) in enumerate(tqdm(test.groupby("user_id"), disable=not progress, desc="holdout")):
        scored = rec.score(user)
        scores = scored.scores.astype(np.float32, copy=True)
        mine = known_by_user.get(user, np.zeros(0, object))
        n_known[row] = len(mine)
        idx = rec.item_index(list(mine))
        scores[idx[idx >= 0]] = -np.inf
        scores[scored.consumed] = -np.inf
        truth = rec.item_index(group["item_id"].tolist())
        rows["all"].append((_top(scores, width), truth, len(truth)))
        for kind in ITEM_KINDS:
            in_kind = truth[(truth >= 0) & (kinds[np.maximum(truth, 0)] == kind)]
            n_kind = int(((truth >= 0) & (kinds[np.maximum(truth, 0)] == kind)).sum())
            if n_kind:
                masked = np.where(kinds == kind, scores, -np.inf)
                rows[f"kind_{kind}"].append((_top(masked, width), in_kind, n_kind))

    def metrics_of(entries: list) -> dict[str, float]:
        if not entries:
            return {f"{m}_at_{k}": float("nan") for k in KS for m in METRIC_NAMES}
        hits = np.array([np.isin(top, truth[truth >= 0]) & (top >= 0) for top, truth, _ in entries])
        return mean_metrics(hits, np.array([n for _, _, n in entries]))

    out = metrics_of(rows["all"])
    out["users"] = len(users)
    groups = {}
    for name, lo, hi in SPARSITY_GROUPS:
        sel = (n_known >= lo) & (n_known < hi if hi is not None else True)
        groups[name] = metrics_of([e for e, s in zip(rows["all"], sel) if s])
        groups[name]["users"] = int(sel.sum())
    out["breakdowns"] = {"sparsity": groups,
                         "kind": {k: metrics_of(rows[f"kind_{k}"]) for k in ITEM_KINDS}}
    return out
