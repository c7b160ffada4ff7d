"""The graph handed to the model: a typed PyG ``HeteroData`` and a normalised sparse adjacency.

Node types: ``user`` and one per item kind present (``official_account``, ``merchant``,
``content``). Edge types:
- ``(user, <event type>, <kind>)``: training interactions, ``edge_weight`` = log1p(number of such
  events on the pair), ``ts`` = the latest time (-1 when untimed);
- ``(user, inner, user)`` and ``(user, outer, user)``: contacts by circle, ``edge_weight`` = tie
  strength, directed from the user to the contact;
- ``(content, published_by, official_account)``.
Every item node stores ``item_idx`` (its global index in the :class:`IdMap`), so per-kind local
indices map back to the single item index that models score over.

The adjacency for propagation is symmetric-normalised, ``D^-1/2 A D^-1/2``, over users then items
(``[num_users + num_items]`` square), as a ``torch.sparse_csr_tensor``: sparse-dense products on it
need neither pyg-lib nor torch-sparse.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from guanxi.features.ids import IdMap
from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS, Dataset


def interaction_pairs(events: pd.DataFrame, idmap: IdMap) -> tuple[np.ndarray, np.ndarray]:
    """Distinct known (user_idx, item_idx) pairs of an events table, each ``[num_pairs]``,
    sorted by user then item. Rows naming ids outside ``idmap`` are dropped."""
    u = idmap.user_index(events["user_id"])
    i = idmap.item_index(events["item_id"])
    ok = (u >= 0) & (i >= 0)
    key = np.unique(u[ok].astype(np.int64) * idmap.num_items + i[ok])
    return (key // idmap.num_items).astype(np.int64), (key % idmap.num_items).astype(np.int64)


def pair_types(events: pd.DataFrame, idmap: IdMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`interaction_pairs` with, per pair, the event types seen on it as a bit mask
    (bit ``t`` set when an event of ``ITEM_EVENT_TYPES[t]`` names the pair), each ``[num_pairs]``."""
    u = idmap.user_index(events["user_id"])
    i = idmap.item_index(events["item_id"])
    t = pd.Index(ITEM_EVENT_TYPES).get_indexer(events["type"].astype(str))
    ok = (u >= 0) & (i >= 0) & (t >= 0)
    key = u[ok].astype(np.int64) * idmap.num_items + i[ok]
    bits = np.left_shift(1, t[ok]).astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, bits = key[order], bits[order]
    first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    mask = np.bitwise_or.reduceat(bits, starts) if len(starts) else np.zeros(0, np.int64)
    key = key[starts]
    return (key // idmap.num_items).astype(np.int64), (key % idmap.num_items).astype(np.int64), mask


def build_hetero_graph(dataset: Dataset, idmap: IdMap, circles: pd.DataFrame | None) -> HeteroData:
    """Build the typed graph from training events, circles and item ownership.

    Args:
        dataset: the dataset; only ``train`` events are used.
        idmap: user and item indices.
        circles: output of :func:`guanxi.features.circles.build_circles`, or None for no social edges.
    """
    kinds = dataset.items.set_index(dataset.items["item_id"].astype(str))["kind"]
    item_kind = pd.Index(ITEM_KINDS).get_indexer(kinds.reindex(idmap.item_ids.astype(str)))
    train = dataset.train
    u = idmap.user_index(train["user_id"])
    i = idmap.item_index(train["item_id"])
    ok = (u >= 0) & (i >= 0)
    etype = pd.Index(ITEM_EVENT_TYPES).get_indexer(train["type"].astype(str))
    ts = train["ts"].to_numpy(dtype=np.float64, na_value=np.nan)
    social = None
    if circles is not None and len(circles):
        cu = idmap.user_index(circles["user_id"])
        cf = idmap.user_index(circles["friend_id"])
        keep = (cu >= 0) & (cf >= 0)
        social = (cu[keep], cf[keep], circles["strength"].to_numpy(np.float32)[keep],
                  circles["circle"].to_numpy()[keep] == "inner")
    owned = dataset.items[dataset.items["owner_id"].notna()]
    owner = np.full(idmap.num_items, -1, np.int64)
    if len(owned):
        ci = idmap.item_index(owned["item_id"])
        oi = idmap.item_index(owned["owner_id"])
        keep = (ci >= 0) & (oi >= 0)
        owner[ci[keep]] = oi[keep]
    return hetero_graph_codes(idmap.num_users, item_kind, u[ok], i[ok], etype[ok], ts[ok], social, owner)


def hetero_graph_codes(num_users: int, item_kind: np.ndarray, ev_user: np.ndarray, ev_item: np.ndarray,
                       ev_type: np.ndarray, ev_ts: np.ndarray,
                       circles: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None,
                       owner: np.ndarray) -> HeteroData:
    """The typed graph from codes (see the module doc), without Python objects per edge.

    Args:
        num_users: ``U``.
        item_kind: ``[I]`` index into ``ITEM_KINDS``.
        ev_user, ev_item, ev_type, ev_ts: ``[E]`` training events (type index into
            ``ITEM_EVENT_TYPES``, ts float, NaN when untimed).
        circles: ``(user, contact, strength, inner)`` rows ``[C]``, or None for no social edges.
        owner: ``[I]`` item index of the publishing account, -1 when none.
    """
    data = HeteroData()
    data["user"].num_nodes = num_users
    num_items = len(item_kind)
    local = np.zeros(num_items, dtype=np.int64)
    for k, kind in enumerate(ITEM_KINDS):
        members = np.flatnonzero(item_kind == k)
        if len(members):
            data[kind].num_nodes = len(members)
            data[kind].item_idx = torch.from_numpy(members)
            local[members] = np.arange(len(members))

    rel_code = ev_type.astype(np.int64) * len(ITEM_KINDS) + item_kind[ev_item]
    key = (rel_code * num_users + ev_user) * num_items + ev_item
    ts = np.nan_to_num(ev_ts, nan=-1.0).astype(np.int64)
    order = np.lexsort((ts, key))
    key, ts = key[order], ts[order]
    del order
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    ends = np.flatnonzero(last)
    count = np.diff(np.concatenate([[-1], ends]))
    key, ts = key[ends], ts[ends]  # one row per (relation, user, item): sorted by user then item
    rel = key // (num_users * num_items)
    pair = key % (num_users * num_items)
    names = sorted((ITEM_EVENT_TYPES[c // len(ITEM_KINDS)], ITEM_KINDS[c % len(ITEM_KINDS)], c)
                   for c in np.unique(rel))
    for etype, kind, code in names:
        sel = rel == code
        u, i = pair[sel] // num_items, pair[sel] % num_items
        store = data["user", etype, kind]
        store.edge_index = torch.from_numpy(np.stack([u, local[i]]))
        store.edge_weight = torch.from_numpy(np.log1p(count[sel]).astype(np.float32))
        store.ts = torch.from_numpy(ts[sel])

    if circles is not None and len(circles[0]):
        cu, cf, strength, inner = circles
        for circle, sel in (("inner", inner), ("outer", ~inner)):
            store = data["user", circle, "user"]
            store.edge_index = torch.from_numpy(np.stack([cu[sel], cf[sel]]).astype(np.int64))
            store.edge_weight = torch.from_numpy(strength[sel].astype(np.float32))

    owned = np.flatnonzero(owner >= 0)
    if len(owned):
        data["content", "published_by", "official_account"].edge_index = torch.from_numpy(
            np.stack([local[owned], local[owner[owned]]]).astype(np.int64))
    return data


def normalized_adjacency(num_users: int, num_items: int, ui_user: np.ndarray, ui_item: np.ndarray,
                         ui_weight: np.ndarray | None = None, uu_src: np.ndarray | None = None,
                         uu_dst: np.ndarray | None = None, uu_weight: np.ndarray | None = None,
                         ii_src: np.ndarray | None = None, ii_dst: np.ndarray | None = None,
                         ii_weight: np.ndarray | None = None, self_loops: bool = False) -> torch.Tensor:
    """Symmetric-normalised adjacency over ``num_users + num_items`` nodes as sparse CSR.

    Args:
        ui_user, ui_item: ``[num_pairs]`` user-item edges (made symmetric here).
        ui_weight: ``[num_pairs]`` edge weights (default 1).
        uu_src, uu_dst, uu_weight: ``[num_social]`` user-user edges, used as given (pass both
            directions for a symmetric graph).
        ii_src, ii_dst, ii_weight: ``[num_ii]`` item-item edges (e.g. content -> owner), made
            symmetric here.
        self_loops: add the identity before normalising.

    Returns:
        ``torch.sparse_csr_tensor`` of shape ``[N, N]``, ``N = num_users + num_items``, float32.
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
