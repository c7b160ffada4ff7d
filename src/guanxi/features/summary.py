"""Build the features of a dataset once and summarise them (the ``guanxi features`` job)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd
from torch_geometric.data import HeteroData

from guanxi.features.circles import CircleConfig, build_circles, circle_codes, circle_summary, circle_summary_codes
from guanxi.features.coded import CodedDataset
from guanxi.features.graph import build_hetero_graph, hetero_graph_codes
from guanxi.features.ids import IdMap
from guanxi.features.schema import ITEM_KINDS, Dataset
from guanxi.features.ties import (TieStrengthConfig, TieStrengthReport, estimate_tie_strength, spearman_codes,
                           tie_strength_codes)


@dataclass(frozen=True)
class Features:
    """Everything built from a dataset before a model sees it."""

    idmap: IdMap
    strengths: pd.DataFrame
    circles: pd.DataFrame
    graph: HeteroData
    tie_report: TieStrengthReport


def build_features(dataset: Dataset, ties: TieStrengthConfig = TieStrengthConfig(),
                   circles: CircleConfig = CircleConfig(),
                   truth_ties: pd.DataFrame | None = None) -> Features:
    """Tie strength, circles and the typed graph of ``dataset`` (training events only)."""
    idmap = IdMap.from_dataset(dataset)
    strengths, report = estimate_tie_strength(dataset, ties, truth_ties)
    circ = build_circles(strengths, circles)
    graph = build_hetero_graph(dataset, idmap, circ)
    return Features(idmap, strengths, circ, graph, report)


def summarize(dataset: Dataset, features: Features, seconds: float | None = None) -> dict:
    """A flat summary: sizes, items by kind, events per split, ties, circles, tie-strength AUC."""
    kinds = dataset.items["kind"].value_counts()
    out = {
        "dataset": dataset.name,
        "users": len(dataset.users),
        "items": len(dataset.items),
        "official_accounts": int(kinds.get("official_account", 0)),
        "merchants": int(kinds.get("merchant", 0)),
        "content": int(kinds.get("content", 0)),
        "commercial_items": int(dataset.items["commercial"].sum()),
        "train_events": len(dataset.train),
        "valid_events": len(dataset.valid),
        "test_events": len(dataset.test),
        "ties_rows": len(dataset.ties),
        "undirected_ties": features.tie_report.pairs,
        "pair_events": len(dataset.pair_events),
        "graph_edge_types": len(features.graph.edge_types),
    }
    out.update(circle_summary(features.circles, len(dataset.users)))
    out["tie_strength"] = asdict(features.tie_report)
    if seconds is not None:
        out["seconds"] = round(seconds, 2)
    return out


def timed_features(dataset: Dataset, truth_ties: pd.DataFrame | None = None) -> tuple[Features, float]:
    start = time.perf_counter()
    feats = build_features(dataset, truth_ties=truth_ties)
    return feats, time.perf_counter() - start


@dataclass(frozen=True)
class CodedFeatures:
    """:class:`Features` as codes (no Python object per row): undirected pairs ``a, b`` with
    ``strength`` ``[num_pairs]``, circle rows ``(user, contact, strength, inner)`` ``[2 *
    num_pairs]``, the typed graph and the tie-strength report."""

    a: np.ndarray
    b: np.ndarray
    strength: np.ndarray
    circles: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    graph: HeteroData
    tie_report: TieStrengthReport


def build_coded_features(data: CodedDataset, ties: TieStrengthConfig = TieStrengthConfig(),
                         circles: CircleConfig = CircleConfig(),
                         truth_ties: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                         stage: Callable[[str], None] | None = None) -> CodedFeatures:
    """:func:`build_features` on a coded dataset; ``stage`` is told each step as it starts."""
    say = stage or (lambda name: None)
    say("tie strength")
    a, b, strength, report = tie_strength_codes(data, ties)
    if truth_ties is not None and len(a):
        report = replace(report, spearman_truth=spearman_codes(a, b, strength, *truth_ties, data.num_users))
    say("circles")
    circ = circle_codes(a, b, strength, circles)
    say("graph")
    ok = (data.train.user >= 0) & (data.train.item >= 0)
    graph = hetero_graph_codes(data.num_users, data.item_kind, data.train.user[ok], data.train.item[ok],
                               data.train.type[ok], data.train.ts[ok], circ, data.owner.astype(np.int64))
    return CodedFeatures(a, b, strength, circ, graph, report)


def summarize_coded(data: CodedDataset, features: CodedFeatures, seconds: float | None = None) -> dict:
    """:func:`summarize` of a coded dataset (the same keys and values)."""
    kinds = np.bincount(data.item_kind, minlength=len(ITEM_KINDS))
    out = {
        "dataset": data.name,
        "users": data.num_users,
        "items": data.num_items,
        **{name: int(kinds[k]) for k, name in ((0, "official_accounts"), (1, "merchants"), (2, "content"))},
        "commercial_items": int(data.commercial.sum()),
        "train_events": len(data.train),
        "valid_events": len(data.valid),
        "test_events": len(data.test),
        "ties_rows": len(data.tie_user),
        "undirected_ties": features.tie_report.pairs,
        "pair_events": len(data.pair_user),
        "graph_edge_types": len(features.graph.edge_types),
    }
    user, _, strength, inner = features.circles
    out.update(circle_summary_codes(user, strength, inner, data.num_users))
    out["tie_strength"] = asdict(features.tie_report)
    if seconds is not None:
        out["seconds"] = round(seconds, 2)
    return out
