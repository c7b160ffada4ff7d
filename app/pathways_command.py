"""``guanxi pathways --data DATA``: for each intent, how engagements reached people (self-sought,
inner circle, outer circle, public world), as a table and a Sankey-style picture, with a world's
truth beside it (:mod:`guanxi.features.pathways`). Registered by :mod:`guanxi.app.cli`."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def truth_events(root: Path, data) -> pd.DataFrame | None:
    """A world's per-event truth as codes (``user_code``, ``via_code``, ``cause``, ``intent``),
    the intent being the true one (version 2) or the item's (version 1); None when not a world."""
    from guanxi.features.ids import IdMap

    path = root / "truth" / "events.parquet"
    if not path.is_file():
        return None
    truth = pd.read_parquet(path)
    ids = IdMap(data.user_ids.to_numpy(zero_copy_only=False), data.item_ids.to_numpy(zero_copy_only=False))
    truth["user_code"] = ids.user_index(truth["user_id"].astype(str).to_numpy())
    truth["via_code"] = np.where(truth["via"].notna(), ids.user_index(truth["via"].fillna("").astype(str).to_numpy()), -1)
    if "intent" not in truth:
        items = ids.item_index(truth["item_id"].astype(str).to_numpy())
        truth["intent"] = np.where(data.commercial[items], "economic", "social")
    return truth


def cmd_pathways(args: argparse.Namespace) -> int:
    from guanxi.features.coded import read_truth_ties
    from guanxi.features.datasets import load_coded
    from guanxi.features.intent import IntentTable
    from guanxi.features.json_file import write_json
    from guanxi.features.pathways import pathways, plot_pathways
    from guanxi.features.summary import build_features

    print(f"reading {args.data} ...", flush=True)
    data = load_coded(args.data)
    root = Path(str(args.data))
    truth = truth_events(root, data) if root.is_dir() else None
    ties = read_truth_ties(root, data) if truth is not None else None
    print("  tie strength and circles ...", flush=True)
    circles = build_features(data).circles
    print("  classifying engagements ...", flush=True)
    ways = pathways(data, circles, IntentTable.load(args.intent_table), truth, ties)
    print(f"\npathways of {data.name} (share of each intent's engagements)")
    print(ways.shares(ways.observed).to_string())
    print("\ncounts")
    print(ways.observed.to_string())
    if ways.truth is not None:
        print("\nthe world's truth: how each engagement really came")
        print(ways.shares(ways.truth).to_string())
    png = Path(args.png or f"pathways-{data.name}.png")
    plot_pathways(ways, png, data.name)
    print(f"\npicture: {png}")
    if args.json:
        write_json(args.json, {"dataset": data.name, **ways.to_dict()})
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pathways", help="for each intent, how engagements reached people (table and picture)")
    p.add_argument("--data", required=True, help="world dir, split dir, or lastfm|lastfm-sociallgn|ciao|yelp")
    p.add_argument("--png", help="the picture (default pathways-<dataset>.png)")
    p.add_argument("--json", help="also write the tables here")
    p.add_argument("--intent-table", help="YAML overriding features/intent.yaml")
    p.set_defaults(func=cmd_pathways)
