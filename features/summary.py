"""Build the features of a dataset once and summarise them (the ``guanxi features`` job)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import pandas as pd
from torch_geometric.data import HeteroData

from features.circles import CircleConfig, build_circles, circle_summary
from features.graph import build_hetero_graph
from features.ids import IdMap
from features.schema import Dataset
from features.ties import TieStrengthConfig, TieStrengthReport, estimate_tie_strength


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
