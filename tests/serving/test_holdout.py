"""The retraining gate's holdout judge (guanxi.app.holdout) through the one evaluator equals a
naive per-user recall and ndcg computed by hand from the serving path's scores."""
from __future__ import annotations

import numpy as np
import pandas as pd

from guanxi.app.holdout import evaluate_served
from guanxi.features.datasets import load_dataset
from guanxi.serving.recommender import Recommender


def _naive(rec: Recommender, holdout: pd.DataFrame, known: pd.DataFrame, k: int = 20) -> tuple[float, float]:
    recalls, ndcgs = [], []
    for user, group in holdout.groupby("user_id"):
        scored = rec.score(user)
        s = scored.scores.astype(np.float64, copy=True)
        s[scored.consumed] = -np.inf
        mine = rec.item_index(known.loc[known["user_id"] == user, "item_id"].tolist())
        s[mine[mine >= 0]] = -np.inf
        top = [i for i in np.argsort(-s, kind="stable")[:k] if np.isfinite(s[i])]
        truth = set(group["item_id"])
        hits = [str(rec.item_ids[i]) in truth for i in top]
        recalls.append(sum(hits) / len(truth))
        dcg = sum(1 / np.log2(r + 2) for r, h in enumerate(hits) if h)
        ndcgs.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(len(truth), k))))
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def test_holdout_metrics_match_a_naive_ranking(bundle, registry):
    ds = load_dataset(str(registry["world"]))
    rec = Recommender(bundle)
    holdout = ds.test[["user_id", "item_id"]].astype(str).drop_duplicates().head(1500)
    # one user with an item nobody knows: it counts in |holdout| and is never hit
    holdout = pd.concat([holdout, pd.DataFrame({"user_id": [holdout["user_id"].iloc[0]], "item_id": ["no-such-item"]})])
    known = pd.concat([ds.train, ds.valid])[["user_id", "item_id"]].astype(str)
    got = evaluate_served(rec, holdout, known)
    recall, ndcg = _naive(rec, holdout, known)
    assert got["users"] == holdout["user_id"].nunique()
    assert abs(got["recall_at_20"] - recall) < 1e-9
    assert abs(got["ndcg_at_20"] - ndcg) < 1e-6
    assert set(got["breakdowns"]) >= {"sparsity", "kind", "cold_start"}


def test_a_registered_version_loads_as_an_mlflow_pyfunc_ranker(registry):
    import mlflow.pyfunc

    from guanxi.registry import use_tracking

    use_tracking(registry["tracking_uri"])
    model = mlflow.pyfunc.load_model("models:/guanxi/1")
    users = pd.DataFrame({"user_id": ["u1", "someone-new"], "k": [5, 3]})
    out = model.predict(users)
    assert list(out.columns) == ["user_id", "item_id", "rank", "score"]
    assert out.groupby("user_id").size().to_dict() == {"u1": 5, "someone-new": 3}
