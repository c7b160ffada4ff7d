"""The adjacency each model propagates over, and the cold-start fallbacks that share its weights.

Social weights (``guanxi``): a contact in the user's inner circle weighs ``inner_weight x
strength``, an outer one ``outer_weight x strength``. Circles are per user, so the two directions
of a tie may differ; the adjacency holds their mean, keeping it symmetric.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from guanxi.features.circles import circle_weight_values, circle_weights
from guanxi.features.graph import normalized_adjacency
from guanxi.features.ids import IdMap
from guanxi.features.schema import ITEM_EVENT_TYPES
from guanxi.training.config import TrainConfig

if TYPE_CHECKING:
    from guanxi.features.coded import CodedDataset
    from guanxi.training.sampled import SupportRows

# Stronger intent weighs more; impressions are not interactions.
EVENT_TYPE_WEIGHTS = {"view": 1.0, "read": 1.0, "click": 1.0, "like": 1.5, "comment": 1.5,
                      "share": 2.0, "follow": 2.0, "pay": 2.0, "impression": 0.0}


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
    w = circle_weights(circles, config.inner_weight, config.outer_weight, config.use_circles)
    return symmetric_mean(u, v, w, idmap.num_users)


def symmetric_mean(u: np.ndarray, v: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric edges ``(src, dst, weight)`` holding the mean of the directed weights ``u -> v``
    ``[num_rows]`` and ``v -> u`` (the adjacency must be symmetric; circles need not be)."""
    half = (w / 2.0).astype(np.float32)
    m = sp.coo_matrix((np.concatenate([half, half]), (np.concatenate([u, v]), np.concatenate([v, u]))),
                      shape=(n, n)).tocsr()
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
    if config.model in ("bpr", "popular", "ease", "itemknn") or config.layers == 0:
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


def coded_graph(config: TrainConfig, data: "CodedDataset", circles: tuple[np.ndarray, ...],
                tie_label: str | None = None) -> tuple[torch.Tensor, np.ndarray, np.ndarray, "SupportRows | None"]:
    """The guanxi adjacency of a coded dataset (what :func:`build_adjacency` gives for its
    tables), without Python objects per row.

    Args:
        config: a ``guanxi`` config.
        data: the coded dataset; only ``train`` events are used.
        circles: ``(user, contact, strength, inner)`` rows from :func:`guanxi.features.circles.circle_codes`.
        tie_label: the tie-strength report's label (``social_score: auto``, see
            :func:`support_matrix`).

    Returns:
        the ``[U + I, U + I]`` normalised CSR adjacency, the distinct training pairs
        ``(pair_user, pair_item)`` ``[P]``, and the social support as rows computed on demand
        (None when the support term is off).
    """
    from guanxi.training.sampled import SupportRows

    if config.model != "guanxi":
        raise ValueError(f"coded_graph builds the guanxi graph, not {config.model!r}")
    n_users, n_items = data.num_users, data.num_items
    ok = (data.train.user >= 0) & (data.train.item >= 0)
    key = data.train.user[ok].astype(np.int64) * n_items + data.train.item[ok]
    type_weight = np.array([EVENT_TYPE_WEIGHTS[t] for t in ITEM_EVENT_TYPES], np.float32)
    order = np.lexsort((type_weight[data.train.type[ok]], key))  # heaviest type last per pair
    key, weight = key[order], type_weight[data.train.type[ok]][order]
    del order
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    key, weight = key[last], weight[last]
    pair_user, pair_item = key // n_items, key % n_items
    del key
    weight = np.where(weight > 0, weight, 1.0).astype(np.float32) if config.use_event_types \
        else np.ones(len(pair_user), np.float32)
    user, contact, strength, inner = circles
    w = circle_weight_values(inner, strength, config.inner_weight, config.outer_weight, config.use_circles)
    social = symmetric_mean(user, contact, w, n_users) if config.use_social else \
        (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    owned = np.flatnonzero(data.owner >= 0) if config.owner_weight > 0 else np.zeros(0, np.int64)
    adjacency = normalized_adjacency(n_users, n_items, pair_user, pair_item, weight, *social,
                                     owned, data.owner[owned].astype(np.int64),
                                     np.full(len(owned), config.owner_weight, np.float32))
    support = None
    wanted = config.social_score == "on" or (config.social_score == "auto" and tie_label == "later_window")
    if config.use_social and wanted:
        weights = sp.csr_matrix((np.minimum(w, config.inner_weight), (user, contact)), shape=(n_users, n_users))
        known = sp.csr_matrix((np.ones(len(pair_user), np.float32), (pair_user, pair_item)),
                              shape=(n_users, n_items))
        support = SupportRows(weights, known)
    return adjacency, pair_user, pair_item, support
