"""The adjacency each model propagates over, and the cold-start fallbacks that share its weights.

Social weights (``guanxi``): a contact in the user's inner circle weighs ``inner_weight x
strength``, an outer one ``outer_weight x strength``. Circles are per user, so the two directions
of a tie may differ; the adjacency holds their mean, keeping it symmetric.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from features.graph import normalized_adjacency
from features.ids import IdMap
from training.config import TrainConfig

# Stronger intent weighs more; impressions are not interactions.
EVENT_TYPE_WEIGHTS = {"view": 1.0, "read": 1.0, "click": 1.0, "like": 1.5, "comment": 1.5,
                      "share": 2.0, "follow": 2.0, "pay": 2.0, "impression": 0.0}


def circle_weights(circles: pd.DataFrame, inner_weight: float, outer_weight: float,
                   use_circles: bool = True) -> np.ndarray:
    """``[num_rows]`` weight of each (user, contact) row of a circles table: ``inner_weight x
    strength`` in the user's inner circle, ``outer_weight x strength`` in the outer one (one weight
    for both when ``use_circles`` is off). The single definition training and serving share."""
    inner = circles["circle"].to_numpy() == "inner"
    scale = np.where(inner | (not use_circles), inner_weight, outer_weight)
    return (scale * circles["strength"].to_numpy()).astype(np.float32)


def social_edges(config: TrainConfig, idmap: IdMap, ties: pd.DataFrame,
                 circles: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric user-user edges ``(src, dst, weight)``, each ``[num_edges]``, for a model.

    ``lightgcn-s`` (and ``guanxi`` without tie strength) uses every listed tie with weight 1.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if config.model == "lightgcn-s" or (config.model == "guanxi" and not config.use_tie_strength):
        u = idmap.user_index(ties["user_id"])
        v = idmap.user_index(ties["friend_id"])
        key = np.unique(np.concatenate([u * idmap.num_users + v, v * idmap.num_users + u]))
        w = np.full(len(key), config.inner_weight if config.model == "guanxi" else 1.0, np.float32)
        return key // idmap.num_users, key % idmap.num_users, w
    if config.model != "guanxi" or not config.use_social or circles is None or len(circles) == 0:
        return empty
    u = idmap.user_index(circles["user_id"])
    v = idmap.user_index(circles["friend_id"])
    w = circle_weights(circles, config.inner_weight, config.outer_weight, config.use_circles) / 2.0
    m = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([u, v]), np.concatenate([v, u]))),
                      shape=(idmap.num_users, idmap.num_users)).tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    coo = m.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float32)


def interaction_weights(config: TrainConfig, train: pd.DataFrame, idmap: IdMap,
                        pair_user: np.ndarray, pair_item: np.ndarray) -> np.ndarray:
    """``[num_pairs]`` weight of each distinct training pair: the strongest event type on it
    (guanxi with ``use_event_types``), else 1."""
    if config.model != "guanxi" or not config.use_event_types:
        return np.ones(len(pair_user), np.float32)
    u = idmap.user_index(train["user_id"])
    i = idmap.item_index(train["item_id"])
    w = train["type"].map(EVENT_TYPE_WEIGHTS).fillna(1.0).to_numpy(np.float32)
    ok = (u >= 0) & (i >= 0)
    frame = pd.DataFrame({"key": u[ok].astype(np.int64) * idmap.num_items + i[ok], "w": w[ok]})
    best = frame.groupby("key")["w"].max()
    weights = best.reindex(pair_user * idmap.num_items + pair_item).fillna(1.0).to_numpy(np.float32)
    return np.where(weights > 0, weights, 1.0).astype(np.float32)


def owner_edges(config: TrainConfig, items: pd.DataFrame, idmap: IdMap) -> tuple[np.ndarray, np.ndarray]:
    """Content -> publishing account item pairs ``(content_idx, owner_idx)`` for guanxi."""
    if config.model != "guanxi" or config.owner_weight <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owned = items[items["owner_id"].notna()]
    c = idmap.item_index(owned["item_id"])
    o = idmap.item_index(owned["owner_id"])
    ok = (c >= 0) & (o >= 0)
    return c[ok].astype(np.int64), o[ok].astype(np.int64)


def build_adjacency(config: TrainConfig, idmap: IdMap, pair_user: np.ndarray, pair_item: np.ndarray,
                    pair_weight: np.ndarray, social: tuple[np.ndarray, np.ndarray, np.ndarray],
                    owners: tuple[np.ndarray, np.ndarray]) -> torch.Tensor | None:
    """The normalised CSR adjacency for ``config.model`` (None for models that do not propagate)."""
    if config.model in ("bpr", "popular") or config.layers == 0:
        return None
    src, dst, w = social
    return normalized_adjacency(idmap.num_users, idmap.num_items, pair_user, pair_item, pair_weight,
                                src, dst, w, owners[0], owners[1],
                                np.full(len(owners[0]), config.owner_weight, np.float32))


def support_matrix(config: TrainConfig, idmap: IdMap, ties: pd.DataFrame, circles: pd.DataFrame | None,
                   known: sp.csr_matrix, tie_label: str | None = None) -> sp.csr_matrix | None:
    """``[U, I]`` social support ``log1p(sum_v w_uv * known[v, i])`` for guanxi's support term.

    ``w_uv`` is the user's own view of contact ``v``: ``inner_weight x strength`` in the inner
    circle, ``outer_weight x strength`` in the outer (one weight for both without circles; 1 for
    every listed tie without tie strength). None when the term is off or there are no contacts.

    ``social_score: auto`` turns it on only when tie strength was learnt from pair events
    (``tie_label == "later_window"``): strengths learnt from item overlap are high exactly for
    contacts who share the user's *training* items, which inflates support on training positives
    and not on held-out ones (measured on LastFM: test recall@20 0.268 with it, 0.282 without).
    """
    wanted = config.social_score == "on" or (config.social_score == "auto" and tie_label == "later_window")
    if config.model != "guanxi" or not wanted or not config.use_social:
        return None
    n = idmap.num_users
    if not config.use_tie_strength:
        u = idmap.user_index(ties["user_id"])
        v = idmap.user_index(ties["friend_id"])
        u, v = np.concatenate([u, v]), np.concatenate([v, u])
        w = np.full(len(u), config.inner_weight, np.float32)
    elif circles is not None and len(circles):
        u = idmap.user_index(circles["user_id"])
        v = idmap.user_index(circles["friend_id"])
        w = circle_weights(circles, config.inner_weight, config.outer_weight, config.use_circles)
    else:
        return None
    ok = (u >= 0) & (v >= 0)
    weights = sp.csr_matrix((w[ok], (u[ok], v[ok])), shape=(n, n))
    weights.data = np.minimum(weights.data, config.inner_weight)  # a tie listed twice counts once
    support = (weights @ known).tocsr()
    support.data = np.log1p(support.data).astype(np.float32)
    return support


def popularity_scores(train_csr: sp.csr_matrix) -> torch.Tensor:
    """``[num_items]`` training popularity scaled to [0, 1]."""
    pop = np.asarray(train_csr.sum(axis=0)).ravel().astype(np.float32)
    return torch.from_numpy(pop / max(pop.max(), 1.0))


def circle_scores(social: sp.csr_matrix, train_csr: sp.csr_matrix, popularity: torch.Tensor,
                  users: torch.Tensor) -> torch.Tensor:
    """Cold-start scores ``[n, num_items]``: what the user's contacts engaged with, weighted by the
    contact's social weight and scaled to [0, 1], plus popularity in [0, 1]. Contacts' items lead,
    but a popular item is not drowned by one weak contact's obscure one (on the planted world,
    contacts' items alone did worse than popularity alone for new users)."""
    rows = users.numpy()
    support = (social[rows] @ train_csr).toarray().astype(np.float32)
    top = np.maximum(support.max(axis=1, keepdims=True), 1e-6)
    return torch.from_numpy(support / top) + popularity[None, :]
