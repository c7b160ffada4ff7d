"""The recommendation bundle, the contract between training and serving: one directory per logged model.

Training writes it (:func:`guanxi.training.bundle.save_bundle` turns a model into arrays and calls
:func:`write_bundle`); serving reads it with :func:`load_bundle`. numpy, scipy, pandas and pyarrow only: no torch.

Files in a bundle directory:
    bundle.json      format version, model name, config, dims, fallback kind, test metrics, the
                     social-support weight and ``support_ties``: whose engagement the support term
                     counts, ``circles`` (each contact's circle weight x strength, the default) or
                     ``listed`` (every listed contact weighs 1); ``events_watermark_seq``: the
                     event-log ``seq`` up to which the bundle's history holds acknowledged
                     feedback (0 or absent: none; serving's recent view keeps only later events);
                     ``written_at``: when the bundle was written (UTC, ISO 8601)
    idmap.json       user and item ids in index order
    user_emb.npy     ``[U, d']`` and ``item_emb.npy`` ``[I, d']`` float32 whose dot product is the
                     model's score (see ``GraphRecommender.serving_vectors``); absent for
                     ``popular``. (Older bundles hold both in ``embeddings.npz``, still read.)
    items.parquet    item_id, kind, commercial, owner_id, category (IdMap order)
    circles.parquet  user_id, friend_id, strength, circle (may be empty)
    history.npz      known interactions as CSR (``indptr [U + 1]``, ``indices``), with ``types``
                     per entry: the event types seen on the pair as a bit mask (bit ``t`` for
                     ``ITEM_EVENT_TYPES[t]``; absent in older bundles)
    popularity.npy   ``[I]`` training popularity in [0, 1]
    intent.npz       the intent profile (optional; absent: no intent claim, every request ranked as
                     ``any``): per user ``mix [U]`` (long-term economic share), ``source [U]``
                     (0 history, 1 circle, 2 population) and the current-intent estimator's state:
                     with ``intent.estimator`` ``filter``, ``state [U]`` (the economic-state
                     probability after the user's last known interaction), ``last_ts [U]`` (its
                     time, NaN: none) and ``propensity [U]``; in older bundles (no ``estimator``:
                     a logistic model, ``coef`` and ``intercept``) the decayed sums ``economic
                     [U]``, ``total [U]`` at ``intent.reference_ts``. ``bundle.json``'s ``intent``
                     entry holds the estimator and ranking weights and the intent table
    state_dict.pt    the model's weights (warm starts; written and read by training only)
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from guanxi.features.ids import IdMap

BUNDLE_FORMAT = 1


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle (see module doc for shapes)."""

    meta: dict
    idmap: IdMap
    user_emb: np.ndarray | None
    item_emb: np.ndarray | None
    items: pd.DataFrame
    circles: pd.DataFrame
    history: sp.csr_matrix
    popularity: np.ndarray
    history_types: np.ndarray | None = None     # [nnz] int64 bit masks aligned with history.indices
    intent: dict[str, np.ndarray] | None = None  # intent.npz: mix, source and the estimator's state, each [U]


def write_bundle(out: str | Path, *, model_name: str, config: dict, idmap: IdMap,
                 vectors: tuple[np.ndarray, np.ndarray] | None, items: pd.DataFrame,
                 circles: pa.Table, history: sp.csr_matrix, popularity: np.ndarray,
                 metrics: dict, support_weight: float = 0.0, history_types: np.ndarray | None = None,
                 servable: bool | None = None, support_ties: str = "circles",
                 extra_meta: dict | None = None, intent: dict[str, np.ndarray] | None = None) -> Path:
    """Write a bundle directory (see module doc).

    Args:
        vectors: ``(user_emb [U, d'], item_emb [I, d'])`` whose dot product is the score, or None
            for a model without embeddings (``popular``).
        history: ``[U, I]`` CSR of known interactions; ``history_types`` ``[nnz]`` aligns with
            ``history.indices``.
        circles: ``user_id, friend_id, strength, circle`` rows
            (:func:`guanxi.features.circles.circles_table`).
        popularity: ``[I]`` in [0, 1].
        servable: defaults to ``vectors is not None or model_name == "popular"``.
        support_weight, support_ties: the social-support term serving adds, ``support_weight x
            log1p(sum over contacts of w x engaged)`` with ``w`` the circle weight x strength
            (``"circles"``) or 1 (``"listed"``).
        extra_meta: further ``bundle.json`` keys (``events_watermark_seq``, ``intent``).
        intent: the intent profile's arrays (``mix``, ``source`` and the estimator's, each ``[U]``).
    """
    if support_ties not in ("circles", "listed"):
        raise ValueError(f"support_ties must be circles or listed, got {support_ties!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    idmap.save(out / "idmap.json")
    dim = 0
    if vectors is not None:
        users, item_vecs = vectors
        # Plain .npy files, so serving workers can memory-map (and share) them.
        np.save(out / "user_emb.npy", np.asarray(users, np.float32))
        np.save(out / "item_emb.npy", np.asarray(item_vecs, np.float32))
        dim = int(users.shape[1])
    by_id = items.set_index(items["item_id"].astype(str))
    ordered = by_id.reindex(idmap.item_ids.astype(str)).reset_index(drop=True)
    ordered["item_id"] = idmap.item_ids.astype(str)
    ordered[["item_id", "kind", "commercial", "owner_id", "category"]].to_parquet(out / "items.parquet")
    pq.write_table(circles, out / "circles.parquet")
    extra = {} if history_types is None else {"types": np.asarray(history_types, np.int64)}
    if history_types is not None and len(history_types) != len(history.indices):
        raise ValueError(f"history_types has {len(history_types)} entries, history {len(history.indices)}")
    np.savez(out / "history.npz", indptr=history.indptr.astype(np.int64),
             indices=history.indices.astype(np.int64), **extra)
    np.save(out / "popularity.npy", popularity.astype(np.float32))
    if intent is not None:
        np.savez(out / "intent.npz", **{k: np.asarray(v) for k, v in intent.items()})
    written = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    meta = {"format": BUNDLE_FORMAT, "model": model_name, "config": config, "written_at": written,
            "servable": servable if servable is not None else vectors is not None or model_name == "popular",
            "num_users": idmap.num_users, "num_items": idmap.num_items, "dim": dim,
            "support_weight": float(support_weight), "support_ties": support_ties,
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}, **(extra_meta or {})}
    (out / "bundle.json").write_text(json.dumps(meta, indent=2))
    return out


def load_bundle(path: str | Path, mmap: bool = False) -> Bundle:
    """Load and check a bundle directory (``mmap``: memory-map the embeddings read-only, so
    processes serving the same files share one copy in the page cache).

    Raises:
        ValueError: a file is missing, the format is unknown, or shapes disagree.
    """
    root = Path(path)
    meta_path = root / "bundle.json"
    if not meta_path.is_file():
        raise ValueError(f"{root}: not a recommendation bundle (no bundle.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{root}: bundle format {meta.get('format')!r}, this code reads {BUNDLE_FORMAT}")
    idmap = IdMap.load(root / "idmap.json")
    user_emb = item_emb = None
    if (root / "item_emb.npy").is_file():
        mode = "r" if mmap else None
        user_emb = np.load(root / "user_emb.npy", mmap_mode=mode)
        item_emb = np.load(root / "item_emb.npy", mmap_mode=mode)
    elif (root / "embeddings.npz").is_file():
        emb = np.load(root / "embeddings.npz")
        user_emb, item_emb = emb["user"], emb["item"]
    if user_emb is not None:
        if user_emb.shape[0] != idmap.num_users or item_emb.shape[0] != idmap.num_items:
            raise ValueError(f"{root}: embeddings {user_emb.shape}/{item_emb.shape} do not match "
                             f"{idmap.num_users} users / {idmap.num_items} items")
    hist = np.load(root / "history.npz")
    history = sp.csr_matrix((np.ones(len(hist["indices"]), np.float32), hist["indices"], hist["indptr"]),
                            shape=(idmap.num_users, idmap.num_items))
    types = hist["types"] if "types" in hist.files else None
    items = pd.read_parquet(root / "items.parquet")
    circles = pd.read_parquet(root / "circles.parquet")
    popularity = np.load(root / "popularity.npy")
    if len(items) != idmap.num_items or len(popularity) != idmap.num_items:
        raise ValueError(f"{root}: items/popularity do not match {idmap.num_items} items")
    intent = None
    if (root / "intent.npz").is_file():
        with np.load(root / "intent.npz") as f:
            intent = {k: f[k] for k in f.files}
        if any(len(v) != idmap.num_users for v in intent.values()):
            raise ValueError(f"{root}: intent.npz does not match {idmap.num_users} users")
    return Bundle(meta, idmap, user_emb, item_emb, items, circles, history, popularity, types, intent)
