"""From the typed graph to what a model propagates over: the normalised adjacency, the training
pairs, the social edges of cold-start fallbacks and guanxi's support term.

The features stage builds one ``HeteroData`` (:func:`guanxi.features.graph.build_graph`); here it is
flattened once with PyG's ``to_homogeneous()`` and each model takes its edges from it.

Social weights (``guanxi``): a contact in the user's inner circle weighs ``inner_weight x
strength``, an outer one ``outer_weight x strength``. Circles are per user, so the two directions
of a tie may differ; the adjacency holds their mean, keeping it symmetric.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from guanxi.features.circles import circle_share, circle_weights
from guanxi.features.graph import SOCIAL_RELATIONS
from guanxi.features.schema import ITEM_EVENT_TYPES
from guanxi.training.config import TrainConfig
from guanxi.training.social_gate import split_social
from guanxi.training.support import SupportRows, social_support

# Stronger intent weighs more; impressions are not interactions.
EVENT_TYPE_WEIGHTS = {"view": 1.0, "read": 1.0, "click": 1.0, "like": 1.5, "comment": 1.5,
                      "share": 2.0, "follow": 2.0, "pay": 2.0, "impression": 0.0}
NON_PROPAGATING = ("bpr", "popular", "ease", "itemknn")

Edges = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ModelGraph:
    """What one model takes from the graph.

    Args:
        adjacency: ``[U + I, U + I]`` normalised CSR, or None for models that do not propagate.
        pair_user, pair_item: ``[P]`` distinct training pairs, sorted by user then item.
        social: ``[U, U]`` CSR of the social weights the cold-start fallback spreads over.
        support: guanxi's ``[U, I]`` social support (CSR or :class:`SupportRows`) whose weight
            the model learns, or None.
        listed: guanxi's ``[U, I]`` support over every listed tie (weight 1 each), added only
            after training with a weight chosen on validation (``social_score: listed``), or None.
        gated: with ``social_gate`` (guanxi), the user-user entries taken out of ``adjacency``
            (after normalising) as ``(src [E], dst [E], values [E])`` for
            :class:`guanxi.training.social_gate.SocialGate`; else None.
    """

    adjacency: torch.Tensor | None
    pair_user: np.ndarray
    pair_item: np.ndarray
    social: sp.csr_matrix
    support: sp.csr_matrix | SupportRows | None
    gated: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    listed: sp.csr_matrix | SupportRows | None = None


@dataclass(frozen=True)
class _FlatGraph:
    """The graph's edges over global ids (users ``0..U-1``, items ``0..I-1``), by family."""

    num_users: int
    num_items: int
    ev_user: np.ndarray
    ev_item: np.ndarray
    ev_type_weight: np.ndarray
    so_user: np.ndarray
    so_contact: np.ndarray
    so_strength: np.ndarray
    so_inner: np.ndarray
    has_circles: bool
    content: np.ndarray
    owner: np.ndarray


def _flatten(graph: HeteroData) -> _FlatGraph:
    """``graph.to_homogeneous()`` with node ids mapped back to user and global item indices."""
    num_users = int(graph["user"].num_nodes)
    kinds = [t for t in graph.node_types if t != "user"]
    num_items = sum(int(graph[k].num_nodes) for k in kinds)
    to_global = torch.cat([torch.arange(num_users)] + [num_users + graph[k].item_idx for k in kinds]).numpy()
    homo = graph.to_homogeneous(node_attrs=[], edge_attrs=["edge_weight"], add_node_type=False,
                                add_edge_type=True) if graph.edge_types else None
    if homo is None or homo.edge_index is None:
        e = np.zeros(0, np.int64)
        return _FlatGraph(num_users, num_items, e, e, e.astype(np.float32), e, e, e.astype(np.float64),
                          e.astype(bool), False, e, e)
    rel = [name[1] for name in graph.edge_types]          # edge_type indexes graph.edge_types
    etype = homo.edge_type.numpy()
    src = to_global[homo.edge_index[0].numpy()]
    dst = to_global[homo.edge_index[1].numpy()]
    weight = homo.edge_weight.numpy()
    del homo
    family = np.array([0 if r in ITEM_EVENT_TYPES else 1 if r in SOCIAL_RELATIONS else 2 for r in rel])[etype]
    type_weight = np.array([EVENT_TYPE_WEIGHTS.get(r, 0.0) for r in rel], np.float32)[etype]
    inner = np.array([r == "inner" for r in rel])[etype]
    ev, so, ow = family == 0, family == 1, family == 2
    order = np.argsort(src[ow] - num_users, kind="stable")
    return _FlatGraph(num_users, num_items, src[ev], dst[ev] - num_users, type_weight[ev], src[so], dst[so],
                      weight[so], inner[so], bool(set(rel) & {"inner", "outer"}),
                      (src[ow] - num_users)[order], (dst[ow] - num_users)[order])


def model_graph(config: TrainConfig, graph: HeteroData, tie_label: str | None = None) -> ModelGraph:
    """The edges ``config.model`` propagates over, taken from the typed graph.

    Args:
        config: the model's config.
        graph: from :func:`guanxi.features.graph.build_graph` (circles for guanxi, listed ties else).
        tie_label: the tie-strength report's label (``social_score: auto``, see :func:`support_mode`).
    """
    flat = _flatten(graph)
    pair_user, pair_item, pair_weight = _pairs(flat)
    if config.model != "guanxi" or not config.use_event_types:
        pair_weight = np.ones(len(pair_user), np.float32)
    social = _social_edges(config, flat)
    fallback = _all_ties(flat, 1.0) if config.model == "guanxi" and not config.use_social else social
    social_csr = sp.csr_matrix((fallback[2], (fallback[0], fallback[1])), shape=(flat.num_users,) * 2)
    adjacency = None
    if config.model not in NON_PROPAGATING and config.layers > 0:
        own = config.model == "guanxi" and config.owner_weight > 0
        content, owner = (flat.content, flat.owner) if own else (np.zeros(0, np.int64),) * 2
        adjacency = normalized_adjacency(flat.num_users, flat.num_items, pair_user, pair_item, pair_weight,
                                         *social, content, owner,
                                         np.full(len(content), config.owner_weight, np.float32))
    gated = None
    if adjacency is not None and config.model == "guanxi" and config.social_gate and len(social[0]):
        adjacency, src, dst, values = split_social(adjacency, flat.num_users)
        gated = (src, dst, values)
    mode = support_mode(config, tie_label)
    return ModelGraph(adjacency, pair_user, pair_item, social_csr,
                      _support(config, flat, pair_user, pair_item) if mode == "learnt" else None, gated,
                      _listed_support(flat, pair_user, pair_item) if mode == "listed" else None)


def _pairs(flat: _FlatGraph) -> Edges:
    """Distinct training pairs ``(user, item)`` ``[P]`` sorted by user then item, and the weight of
    the strongest event type on each (1 where only impressions name the pair)."""
    key = flat.ev_user.astype(np.int64) * flat.num_items + flat.ev_item
    order = np.lexsort((flat.ev_type_weight, key))  # heaviest type last per pair
    key, weight = key[order], flat.ev_type_weight[order]
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    key, weight = key[last], weight[last]
    return key // flat.num_items, key % flat.num_items, np.where(weight > 0, weight, 1.0).astype(np.float32)


def _all_ties(flat: _FlatGraph, weight: float) -> Edges:
    """Every listed tie, both directions once, with one ``weight``."""
    n = flat.num_users
    key = np.unique(np.concatenate([flat.so_user * n + flat.so_contact, flat.so_contact * n + flat.so_user]))
    return key // n, key % n, np.full(len(key), weight, np.float32)


def _social_edges(config: TrainConfig, flat: _FlatGraph) -> Edges:
    """Symmetric user-user edges ``(src, dst, weight)`` for ``config.model``: ``lightgcn-s`` (and
    guanxi without tie strength) takes every listed tie with one weight; guanxi the circle weights."""
    if config.model == "lightgcn-s" or (config.model == "guanxi" and not config.use_tie_strength):
        return _all_ties(flat, config.inner_weight if config.model == "guanxi" else 1.0)
    if config.model != "guanxi" or not config.use_social or not flat.has_circles:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    w = circle_weights(flat.so_inner, flat.so_strength, config.inner_weight, config.outer_weight,
                       config.use_circles)
    return symmetric_mean(flat.so_user, flat.so_contact, w, flat.num_users)


def support_mode(config: TrainConfig, tie_label: str | None) -> str | None:
    """Which social-support term guanxi gets: ``"learnt"``, ``"listed"`` or None.

    ``social_score: auto`` learns the term's weight when tie strength was learnt from pair events
    (``tie_label == "later_window"``). Strengths learnt from item overlap are high exactly for
    contacts who share the user's *training* items, which inflates a support built on them on
    training positives and not on held-out ones (LastFM: test recall@20 0.268 with it, 0.282
    without); there ``auto`` takes the ``listed`` term instead: every listed tie weighs 1, nothing is
    learnt from it, and its weight is chosen on validation after training (``listed_weights``).
    """
    if config.model != "guanxi" or not config.use_social or config.social_score == "off":
        return None
    if config.social_score == "on" or (config.social_score == "auto" and tie_label == "later_window"):
        return "learnt"
    return "listed"


def _support(config: TrainConfig, flat: _FlatGraph, pair_user: np.ndarray,
             pair_item: np.ndarray) -> sp.csr_matrix | SupportRows | None:
    """guanxi's learnt ``[U, I]`` support ``log1p(sum_v w_uv * known[v, i])``, ``w_uv`` the user's
    own view of contact ``v`` (capped at ``inner_weight``; ``inner_weight`` for every listed tie
    without tie strength). None without contacts."""
    if len(flat.so_user) == 0:
        return None
    n = flat.num_users
    if not config.use_tie_strength:
        u, v, w = _all_ties(flat, config.inner_weight)
    else:
        u, v = flat.so_user, flat.so_contact
        w = circle_weights(flat.so_inner, flat.so_strength, config.inner_weight, config.outer_weight,
                           config.use_circles)
    weights = sp.csr_matrix((np.minimum(w, config.inner_weight), (u, v)), shape=(n, n))
    return social_support(weights, _known(flat, pair_user, pair_item))


def _listed_support(flat: _FlatGraph, pair_user: np.ndarray, pair_item: np.ndarray) -> sp.csr_matrix | SupportRows | None:
    """``[U, I]`` ``log1p`` of how many of the user's listed contacts engaged with each item in
    training (every tie weighs 1, both directions). None without contacts."""
    if len(flat.so_user) == 0:
        return None
    n = flat.num_users
    u, v, w = _all_ties(flat, 1.0)
    return social_support(sp.csr_matrix((w, (u, v)), shape=(n, n)), _known(flat, pair_user, pair_item))


def _known(flat: _FlatGraph, pair_user: np.ndarray, pair_item: np.ndarray) -> sp.csr_matrix:
    """``[U, I]`` CSR of the training pairs ``[P]``, 1 each: the engagement support counts."""
    return sp.csr_matrix((np.ones(len(pair_user), np.float32), (pair_user, pair_item)),
                         shape=(flat.num_users, flat.num_items))


def symmetric_mean(u: np.ndarray, v: np.ndarray, w: np.ndarray, n: int) -> Edges:
    """Symmetric edges ``(src, dst, weight)`` holding the mean of the directed weights ``u -> v``
    ``[num_rows]`` and ``v -> u`` (the adjacency must be symmetric; circles need not be)."""
    half = (w / 2.0).astype(np.float32)
    m = sp.coo_matrix((np.concatenate([half, half]), (np.concatenate([u, v]), np.concatenate([v, u]))),
                      shape=(n, n)).tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    coo = m.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float32)


def normalized_adjacency(num_users: int, num_items: int, ui_user: np.ndarray, ui_item: np.ndarray,
                         ui_weight: np.ndarray | None = None, uu_src: np.ndarray | None = None,
                         uu_dst: np.ndarray | None = None, uu_weight: np.ndarray | None = None,
                         ii_src: np.ndarray | None = None, ii_dst: np.ndarray | None = None,
                         ii_weight: np.ndarray | None = None, self_loops: bool = False) -> torch.Tensor:
    """Symmetric-normalised adjacency ``D^-1/2 A D^-1/2`` over ``num_users + num_items`` nodes
    (users, then items) as a ``torch.sparse_csr_tensor``: its products need neither pyg-lib nor
    torch-sparse.

    Args:
        ui_user, ui_item: ``[num_pairs]`` user-item edges (made symmetric here).
        ui_weight: ``[num_pairs]`` edge weights (default 1).
        uu_src, uu_dst, uu_weight: ``[num_social]`` user-user edges, used as given (pass both
            directions for a symmetric graph).
        ii_src, ii_dst, ii_weight: ``[num_ii]`` item-item edges (e.g. content -> owner), made
            symmetric here.
        self_loops: add the identity before normalising.

    Returns:
        ``[N, N]`` float32, ``N = num_users + num_items``.
    """
    n = num_users + num_items
    w_ui = np.ones(len(ui_user), np.float32) if ui_weight is None else ui_weight.astype(np.float32)
    rows = [ui_user, ui_item + num_users]
    cols = [ui_item + num_users, ui_user]
    vals = [w_ui, w_ui]
    if uu_src is not None and len(uu_src):
        rows.append(uu_src)
        cols.append(uu_dst)
        vals.append(np.ones(len(uu_src), np.float32) if uu_weight is None else uu_weight.astype(np.float32))
    if ii_src is not None and len(ii_src):
        w_ii = np.ones(len(ii_src), np.float32) if ii_weight is None else ii_weight.astype(np.float32)
        rows += [ii_src + num_users, ii_dst + num_users]
        cols += [ii_dst + num_users, ii_src + num_users]
        vals += [w_ii, w_ii]
    if self_loops:
        rows.append(np.arange(n))
        cols.append(np.arange(n))
        vals.append(np.ones(n, np.float32))
    row = np.concatenate(rows).astype(np.int64)
    col = np.concatenate(cols).astype(np.int64)
    val = np.concatenate(vals).astype(np.float32)
    deg = np.bincount(row, weights=val, minlength=n)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    val = (val * inv[row] * inv[col]).astype(np.float32)
    coo = torch.sparse_coo_tensor(torch.from_numpy(np.stack([row, col])), torch.from_numpy(val),
                                  (n, n), check_invariants=False).coalesce()
    return coo.to_sparse_csr()


def popularity_scores(train_csr: sp.csr_matrix) -> torch.Tensor:
    """``[num_items]`` training popularity scaled to [0, 1]."""
    pop = np.asarray(train_csr.sum(axis=0)).ravel().astype(np.float32)
    return torch.from_numpy(pop / max(pop.max(), 1.0))


def circle_scores(social: sp.csr_matrix, train_csr: sp.csr_matrix, popularity: torch.Tensor,
                  users: torch.Tensor) -> torch.Tensor:
    """Cold-start scores ``[n, num_items]`` of ``users`` ``[n]``: what their contacts engaged with,
    weighted by the contact's social weight, blended with popularity (:func:`circle_share`)."""
    support = (social[users.numpy()] @ train_csr).toarray().astype(np.float32)
    return torch.from_numpy(circle_share(support)) + popularity[None, :]
