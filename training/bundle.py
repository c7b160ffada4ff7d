"""Turn a trained model into a recommendation bundle (the contract lives in :mod:`guanxi.bundle`)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
import torch

from guanxi.bundle import write_bundle
from guanxi.features.coded import CodedEvents, code_events
from guanxi.features.graph import event_pairs
from guanxi.features.ids import IdMap

if TYPE_CHECKING:
    from guanxi.training.train import Prepared


def save_bundle(out: str | Path, *, model_name: str, config: dict, idmap: IdMap,
                model: torch.nn.Module | None, items: pd.DataFrame, circles: pa.Table,
                history: sp.csr_matrix, popularity: np.ndarray, metrics: dict,
                history_types: np.ndarray | None = None, meta: dict | None = None,
                intent: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``model``'s serving vectors (``GraphRecommender.serving_vectors``), its weights
    (``state_dict.pt``, for warm starts) and the rest of the bundle; ``history_types`` ``[nnz]``
    aligns with ``history.indices``; ``meta`` joins ``bundle.json``."""
    vectors = None
    support_weight, support_ties = 0.0, "circles"
    if model is not None:
        model.eval()
        with torch.no_grad():
            users, item_vecs = model.serving_vectors()
        # A model without propagation hands out views of its parameters: detach before numpy.
        vectors = (users.detach().cpu().numpy(), item_vecs.detach().cpu().numpy())
        if getattr(model, "support_weight", None) is not None:
            support_weight = model.support_weight.item()
            support_ties = getattr(model, "support_ties", "circles")
    out = write_bundle(out, model_name=model_name, config=config, idmap=idmap, vectors=vectors, items=items,
                       circles=circles, history=history, popularity=popularity, metrics=metrics,
                       support_weight=support_weight, history_types=history_types, support_ties=support_ties,
                       extra_meta=meta, intent=intent)
    if model is not None:
        torch.save(model.state_dict(), out / "state_dict.pt")
    return out


def known_history(prep: "Prepared", extra_events: pd.DataFrame | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Every interaction known before the test split, which serving must not recommend back: the
    ``[U, I]`` CSR of train + valid (+ ``extra_events``, e.g. a retrain's holdout) pairs, and
    ``[nnz]`` the event types seen on each pair as bit masks, aligned with its indices."""
    parts = [prep.data.train, prep.data.valid]
    if extra_events is not None and len(extra_events):
        parts.append(code_events(extra_events, prep.idmap))
    u, i, bits = event_pairs(CodedEvents.concat(parts), prep.idmap.num_items)
    history = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(prep.idmap.num_users, prep.idmap.num_items))
    return history, bits
