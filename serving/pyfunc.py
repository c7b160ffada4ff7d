"""The MLflow pyfunc face of a logged bundle: ``mlflow.pyfunc.load_model("models:/guanxi@champion")``.

``guanxi.registry.BundleModel`` (the logged pyfunc) names this module and builds a
:class:`BundlePyfunc` over the logged bundle directory. ``predict`` takes a frame with ``user_id`` (and optional ``k``) and returns
``user_id, item_id, rank, score`` rows, ranked by the model alone (no exposure policy).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from guanxi.bundle import load_bundle
from guanxi.serving.recommender import Recommender


class BundlePyfunc:
    """A :class:`Recommender` over one bundle directory, with MLflow's ``predict``."""

    def __init__(self, bundle_dir: str | Path) -> None:
        self.bundle_dir = str(bundle_dir)
        self.recommender = Recommender(load_bundle(bundle_dir))

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        rows = []
        ks = model_input["k"] if "k" in model_input else pd.Series([20] * len(model_input))
        for user_id, k in zip(model_input["user_id"].astype(str), ks):
            for rank, (item, score) in enumerate(self.recommender.top_items(user_id, int(k))):
                rows.append({"user_id": user_id, "item_id": item, "rank": rank + 1, "score": score})
        return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])
