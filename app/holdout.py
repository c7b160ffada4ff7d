"""Score any served model on a holdout of events, the same way for every model (retraining gate).

Two models trained on different data know different users, items and histories, so both are
judged through the serving path (:meth:`guanxi.serving.recommender.Recommender.score`) with one shared
exclusion set: every (user, item) pair known before the holdout. The ranking and the metrics are
the training evaluator's (:func:`guanxi.training.evaluate.evaluate_ranking`): full ranking over
each model's own catalogue, an item a model does not know counts as a miss, every holdout user
counts (users a model does not know get its fallback), sparsity groups by the user's known
interactions, kinds ranked within the kind, and per intent (each holdout event's intent by the
intent table: the same ranking, the pairs of one intent at a time).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from dataclasses import replace

from guanxi.features.intent import INTENTS, IntentTable
from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS
from guanxi.serving.recommender import Recommender
from guanxi.training.evaluate import RankingTask, evaluate_ranking


def evaluate_served(rec: Recommender, holdout: pd.DataFrame, known: pd.DataFrame,
                    progress: bool = False) -> dict:
    """Metrics ``@10/@20`` on ``holdout``, with ``breakdowns`` by item kind, by sparsity group, by
    intent and for users with nothing known (``cold_start``).

    Args:
        rec: the model to judge.
        holdout: events with ``user_id``, ``item_id`` (duplicates ignored).
        known: events known before the holdout (excluded from every ranking).
    """
    cols = ["user_id", "item_id"] + (["type"] if "type" in holdout else [])
    test = holdout[cols].astype(str).drop_duplicates(["user_id", "item_id"])
    known = known[["user_id", "item_id"]].astype(str).drop_duplicates()
    users = np.array(sorted(test["user_id"].unique()), dtype=object)
    local = pd.Index(users)
    n_items = len(rec.item_ids)

    def pairs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row = local.get_indexer(frame["user_id"])
        col = rec.item_index(frame["item_id"].tolist())
        return row, col, (row >= 0) & (col >= 0)

    ku, ki, kept = pairs(known)
    exclude = sp.csr_matrix((np.ones(int(kept.sum()), np.float32), (ku[kept], ki[kept])), shape=(len(users), n_items))
    n_known = np.bincount(ku[ku >= 0], minlength=len(users))
    tu, ti, ranked = pairs(test)
    unranked = np.bincount(tu[~ranked], minlength=len(users))     # holdout items the model does not know

    def score(u: torch.Tensor) -> torch.Tensor:
        rows = []
        for i in u.tolist():
            scored = rec.score(str(users[i]))
            s = scored.scores.astype(np.float32, copy=True)
            s[scored.consumed] = -np.inf                            # what the bundle already holds
            rows.append(s)
        return torch.from_numpy(np.stack(rows))

    task = RankingTask(num_items=n_items, exclude=exclude, train_count=n_known, test_user=tu[ranked],
                       test_item=ti[ranked], item_kind=np.asarray(rec.kinds).astype(str), unranked=unranked)
    result = evaluate_ranking(score, task, progress=progress)
    if "type" in test:
        table = rec.intent.table if rec.intent.claims else IntentTable.load()
        types = np.array([ITEM_EVENT_TYPES.index(t) for t in test["type"][ranked]], np.int64)
        kinds = np.array([ITEM_KINDS.index(k) for k in np.asarray(rec.kinds)[ti[ranked]]], np.int64)
        intent = table.of_events(types, kinds, rec.commercial[ti[ranked]])
        by_intent = {}
        for code, name in enumerate(INTENTS):
            sel = intent == code
            if sel.any():
                sub = replace(task, test_user=task.test_user[sel], test_item=task.test_item[sel], unranked=None)
                by_intent[name] = evaluate_ranking(score, sub, breakdowns=False)
        result.setdefault("breakdowns", {})["intent"] = by_intent
    return result
