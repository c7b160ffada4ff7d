"""Build the features of a dataset once and summarise them (the ``guanxi features`` job)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
from torch_geometric.data import HeteroData

from guanxi.features.circles import CircleConfig, CircleRows, build_circles, circle_summary
from guanxi.features.coded import CodedDataset
from guanxi.features.graph import build_graph
from guanxi.features.schema import ITEM_KINDS
from guanxi.features.ties import TieStrengthConfig, TieStrengthReport, estimate_tie_strength, spearman_with_truth


@dataclass(frozen=True)
class Features:
    """Everything built from a dataset before a model sees it: undirected pairs ``a, b`` with
    ``strength`` ``[num_pairs]`` (user codes), circle rows ``[2 * num_pairs]``, the typed graph
    and the tie-strength report."""

    a: np.ndarray
    b: np.ndarray
    strength: np.ndarray
    circles: CircleRows
    graph: HeteroData
    tie_report: TieStrengthReport


def build_features(data: CodedDataset, ties: TieStrengthConfig = TieStrengthConfig(),
                   circles: CircleConfig = CircleConfig(),
                   truth_ties: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                   stage: Callable[[str], None] | None = None) -> Features:
    """Tie strength, circles and the typed graph of ``data`` (training events only); ``stage``
    is told each step as it starts."""
    say = stage or (lambda name: None)
    say("tie strength")
    a, b, strength, report = estimate_tie_strength(data, ties)
    if truth_ties is not None and len(a):
        report = replace(report, spearman_truth=spearman_with_truth(a, b, strength, *truth_ties, data.num_users))
    say("circles")
    circ = build_circles(a, b, strength, circles)
    say("graph")
    return Features(a, b, strength, circ, build_graph(data, circ), report)


def summarize(data: CodedDataset, features: Features, seconds: float | None = None) -> dict:
    """A flat summary: sizes, items by kind, events per split, ties, circles, tie-strength AUC."""
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
    out.update(circle_summary(user, strength, inner, data.num_users))
    out["tie_strength"] = asdict(features.tie_report)
    if seconds is not None:
        out["seconds"] = round(seconds, 2)
    return out
