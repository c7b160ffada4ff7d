"""One entry point from a ``--data`` argument to a :class:`Dataset`.

``--data`` may be a world directory (``world.json``), a split directory (``train.tsv``,
``test.tsv``, ``social.tsv``) or the name of a raw public set (``lastfm``, ``lastfm-sociallgn``,
``ciao``, ``yelp``) or of a dense core of one (``yelp-dense``: ``guanxi.features.dense_core``). A named set is read from its saved split directory under
``experiments/splits/NAME`` when that exists, else built from the raw files and saved there,
so every comparison uses the same split.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from guanxi.features.dense_core import dense_core
from guanxi.features.load_raw import load_ciao, load_lastfm_hetrec, load_lastfm_sociallgn, load_yelp_hin
from guanxi.features.load_split import is_split_dir, load_split_dir, write_split_dir
from guanxi.features.named_sets import DENSE_SETS, NAMED_SETS
from guanxi.features.schema import Dataset, Origin, SchemaError, validate_events, validate_items, validate_ties
from guanxi.features.split import split_per_user
from guanxi.features.world import is_world_dir

if TYPE_CHECKING:
    from guanxi.features.coded import CodedDataset

logger = logging.getLogger(__name__)

RAW_PATHS = {
    "lastfm": "lastfm/hetrec2011-lastfm-2k",
    "lastfm-sociallgn": "lastfm/sociallgn_split",
    "ciao": "ciao/tang2012",
    "yelp": "yelp/herec_hin",
}


def data_root() -> Path:
    """Where the raw public sets live: ``$GUANXI_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("GUANXI_DATA", "../shared/data"))


def splits_root() -> Path:
    """Where saved splits of the raw sets live: ``$GUANXI_SPLITS``, else ``experiments/splits``."""
    return Path(os.environ.get("GUANXI_SPLITS", "experiments/splits"))


def load_raw_split(name: str, root: Path | None = None) -> Dataset:
    """Build the protocol split of a named set from ``../shared/data`` (not saved)."""
    if name not in NAMED_SETS:
        raise ValueError(f"unknown dataset {name!r}; named sets are {list(NAMED_SETS)}")
    dense = DENSE_SETS.get(name)
    source = dense.source if dense else name
    path = (root or data_root()) / RAW_PATHS[source]
    if not path.is_dir():
        raise FileNotFoundError(f"raw data for {name!r} not found at {path}; set GUANXI_DATA")
    if source == "lastfm-sociallgn":
        return load_lastfm_sociallgn(path)
    loader = {"lastfm": load_lastfm_hetrec, "ciao": load_ciao, "yelp": load_yelp_hin}[source]
    tables = loader(path)
    if dense:
        tables = dense_core(tables, dense.min_per_user, dense.min_per_item)
    return split_per_user(tables, name)


def load_dataset(spec: str | Path) -> Dataset:
    """Load a world directory, a split directory or a named raw set (see module doc)."""
    path = Path(spec)
    if is_world_dir(path):
        return load_world_dir(path)
    if is_split_dir(path):
        return load_split_dir(path)
    name = str(spec)
    if name in NAMED_SETS:
        saved = splits_root() / name
        if is_split_dir(saved):
            return load_split_dir(saved, name=name)
        dataset = load_raw_split(name)
        write_split_dir(dataset, saved)
        logger.info("saved the %s split to %s", name, saved)
        return load_split_dir(saved, name=name)
    if path.exists():
        raise SchemaError(str(path), None, None,
                          "neither a world directory (world.json) nor a split directory "
                          "(train.tsv, test.tsv, social.tsv)")
    raise ValueError(f"--data {name!r}: no such directory, and not a named set {list(NAMED_SETS)}")


def load_coded(spec: str | Path) -> "CodedDataset":
    """:func:`load_dataset` as codes: a world directory is read straight from its Parquet files (no
    Python string per row, what a million users need); anything else is loaded, then coded."""
    from guanxi.features.coded import coded_from_dataset, load_coded_world

    if is_world_dir(Path(spec)):
        return load_coded_world(spec)
    return coded_from_dataset(load_dataset(spec))


def load_world_dir(path: str | Path) -> Dataset:
    """Load a world directory written by ``guanxi world`` (Parquet tables)."""
    root = Path(path)
    meta = json.loads((root / "world.json").read_text())
    tables = {}
    for name in ("users", "items", "ties", "pair_events", "train", "valid", "test"):
        file = root / f"{name}.parquet"
        if not file.is_file():
            raise SchemaError(str(file), None, None, "missing file in world directory")
        df = pd.read_parquet(file)
        for col in df.columns:
            if col in ("ts",):
                df[col] = df[col].astype("Int64")
            elif df[col].dtype != bool and not pd.api.types.is_float_dtype(df[col]):
                df[col] = df[col].astype(object).where(df[col].notna(), None)
        tables[name] = df
    items = tables["items"]
    validate_items(items, Origin(str(root / "items.parquet"), first_line=1))
    validate_ties(tables["ties"], Origin(str(root / "ties.parquet"), first_line=1), tables["users"]["user_id"])
    for name in ("train", "valid", "test"):
        validate_events(tables[name], Origin(str(root / f"{name}.parquet"), first_line=1),
                        items["item_id"], tables["users"]["user_id"])
    return Dataset(meta.get("name", root.name), tables["users"], items, tables["ties"],
                   tables["pair_events"], tables["train"], tables["valid"], tables["test"])


def without_users(dataset: Dataset, forgotten: Callable[[pd.Series], np.ndarray]) -> tuple[Dataset, int]:
    """``dataset`` with the users that ``forgotten`` flags (``[n]`` bool per id) removed from every
    table: users, ties and pair events on either side, and every event split. Returns the dataset
    and how many of its users were removed."""
    def keep(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
        out = df
        for col in cols:
            out = out[~forgotten(out[col].astype(str))]
        return out.reset_index(drop=True)

    gone = int(forgotten(dataset.users["user_id"].astype(str)).sum())
    if not gone:
        return dataset, 0
    return replace(dataset, users=keep(dataset.users, "user_id"),
                   ties=keep(dataset.ties, "user_id", "friend_id"),
                   pair_events=keep(dataset.pair_events, "user_id", "friend_id"),
                   train=keep(dataset.train, "user_id"), valid=keep(dataset.valid, "user_id"),
                   test=keep(dataset.test, "user_id")), gone
