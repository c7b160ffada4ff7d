"""The graph handed to the model: one typed PyG ``HeteroData``, built from codes.

Node types: ``user`` and one per item kind present (``official_account``, ``merchant``,
``content``). Edge types:
- ``(user, <event type>, <kind>)``: training interactions, ``edge_weight`` = log1p(number of such
  events on the pair), ``ts`` = the latest time (-1 when untimed); events that are not interactions
  (``hide``: :data:`guanxi.features.schema.NOT_INTERACTIONS`) make no edge;
- ``(user, inner, user)`` and ``(user, outer, user)``: contacts by circle, ``edge_weight`` = tie
  strength, directed from the user to the contact (both directions present: circles are per user);
- ``(user, tie, user)``: the listed ties, both directions, ``edge_weight`` 1, when no circles were
  built (models that do not use tie strength);
- ``(content, published_by, official_account)``, ``edge_weight`` 1.
Every item node stores ``item_idx`` (its global index in the :class:`IdMap`), so per-kind local
indices map back to the single item index that models score over. Training turns the graph into
its propagation adjacency with ``to_homogeneous()`` (:mod:`guanxi.training.adjacency`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import HeteroData

from guanxi.features.circles import CircleRows
from guanxi.features.coded import CodedDataset, CodedEvents
from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS, NOT_INTERACTIONS
from guanxi.features.ties import undirected_pair_codes

SOCIAL_RELATIONS = ("inner", "outer", "tie")


def event_pairs(events: CodedEvents, num_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct known ``(user, item)`` pairs of coded events, sorted by user then item, with the
    event types seen on each pair as a bit mask (bit ``t`` for ``ITEM_EVENT_TYPES[t]``), each
    ``[num_pairs]``. Rows with a negative code are dropped."""
    ok = (events.user >= 0) & (events.item >= 0) & (events.type >= 0)
    key = events.user[ok].astype(np.int64) * num_items + events.item[ok]
    bits = np.left_shift(1, events.type[ok].astype(np.int64))
    order = np.argsort(key, kind="stable")
    key, bits = key[order], bits[order]
    first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    mask = np.bitwise_or.reduceat(bits, starts) if len(starts) else np.zeros(0, np.int64)
    key = key[starts]
    return key // num_items, key % num_items, mask


def build_graph(data: CodedDataset, circles: CircleRows | None) -> HeteroData:
    """The typed graph of ``data``'s training events, its circles (or listed ties) and item
    ownership (see the module doc).

    Args:
        data: the coded dataset; only ``train`` events are used.
        circles: ``(user, contact, strength, inner)`` rows ``[C]`` from
            :func:`guanxi.features.circles.build_circles`, or None to carry the listed ties instead.
    """
    graph = HeteroData()
    num_users, num_items = data.num_users, data.num_items
    graph["user"].num_nodes = num_users
    local = np.zeros(num_items, dtype=np.int64)
    for k, kind in enumerate(ITEM_KINDS):
        members = np.flatnonzero(data.item_kind == k)
        if len(members):
            graph[kind].num_nodes = len(members)
            graph[kind].item_idx = torch.from_numpy(members)
            local[members] = np.arange(len(members))
    _add_interactions(graph, data.train, data.item_kind, local, num_users, num_items)

    if circles is not None and len(circles[0]):
        user, contact, strength, inner = circles
        for circle, sel in (("inner", inner), ("outer", ~inner)):
            store = graph["user", circle, "user"]
            store.edge_index = torch.from_numpy(np.stack([user[sel], contact[sel]]).astype(np.int64))
            store.edge_weight = torch.from_numpy(strength[sel].astype(np.float64))  # as estimated
    elif circles is None and len(data.tie_user):
        a, b, _ = undirected_pair_codes(data.tie_user, data.tie_friend, num_users)
        store = graph["user", "tie", "user"]
        store.edge_index = torch.from_numpy(np.stack([np.concatenate([a, b]), np.concatenate([b, a])]))
        store.edge_weight = torch.ones(2 * len(a))

    owned = np.flatnonzero(data.owner >= 0)
    if len(owned):
        store = graph["content", "published_by", "official_account"]
        store.edge_index = torch.from_numpy(np.stack([local[owned], local[data.owner[owned]]]).astype(np.int64))
        store.edge_weight = torch.ones(len(owned))
    return graph


def _add_interactions(graph: HeteroData, train: CodedEvents, item_kind: np.ndarray, local: np.ndarray,
                      num_users: int, num_items: int) -> None:
    """One ``(user, <event type>, <kind>)`` store per relation seen in ``train`` (interactions only)."""
    ok = (train.user >= 0) & (train.item >= 0)
    for name in NOT_INTERACTIONS:
        ok &= train.type != ITEM_EVENT_TYPES.index(name)
    ev_user, ev_item = train.user[ok].astype(np.int64), train.item[ok].astype(np.int64)
    rel_code = train.type[ok].astype(np.int64) * len(ITEM_KINDS) + item_kind[ev_item]
    key = (rel_code * num_users + ev_user) * num_items + ev_item
    ts = np.nan_to_num(train.ts[ok], nan=-1.0).astype(np.int64)
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
        store = graph["user", etype, kind]
        store.edge_index = torch.from_numpy(np.stack([u, local[i]]))
        store.edge_weight = torch.from_numpy(np.log1p(count[sel]).astype(np.float32))
        store.ts = torch.from_numpy(ts[sel])
