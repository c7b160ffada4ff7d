"""A generated world out of integer codes: as pandas tables (small worlds) or streamed to Parquet.

The Parquet writer never builds a Python string per row: each table is written in blocks of
``BLOCK_ROWS`` rows, the id columns taken from one Arrow string array of the ids by code, so
writing a million-user world costs the codes plus one block.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS, PAIR_EVENT_TYPES, make_events, make_items
from guanxi.features.schema import Dataset
from guanxi.features.tsv import AtomicDir
from guanxi.features.world import GROUPS, T0, World, WorldCodes

BLOCK_ROWS = 1_000_000
_CAUSES = np.array(["interest", "social"], dtype=object)
_INTENTS = np.array(["social", "economic"], dtype=object)


def world_tables(codes: WorldCodes) -> World:
    """The world as pandas tables with string ids (the canonical :class:`Dataset`)."""
    users = codes.user_ids().astype(object)
    item_ids = codes.item_ids().astype(object)
    n_oa, n_m, _ = codes.item_counts
    owner = np.where(codes.owner >= 0, item_ids[np.maximum(codes.owner, 0)], None)
    category = np.where(codes.category >= 0,
                        np.char.add("cat", np.maximum(codes.category, 0).astype(str)).astype(object), None)
    kinds = np.asarray(ITEM_KINDS, dtype=object)[codes.item_kind]
    items = make_items(item_ids, kinds, codes.commercial, owner, category)
    types = np.asarray(ITEM_EVENT_TYPES, dtype=object)
    splits = {}
    for split in ("train", "valid", "test"):
        sel = codes.split_of(split)
        splits[split] = make_events(users[codes.event_user[sel]], item_ids[codes.event_item[sel]],
                                    types[codes.event_type[sel]], codes.event_ts[sel],
                                    codes.event_value[sel])
    pair_events = pd.DataFrame({
        "user_id": users[codes.pair_user], "friend_id": users[codes.pair_friend],
        "type": np.asarray(PAIR_EVENT_TYPES, dtype=object)[codes.pair_type],
        "ts": pd.array(codes.pair_ts, dtype="Int64"), "value": codes.pair_value})
    pair_events["type"] = pair_events["type"].astype(object)
    ties = pd.DataFrame({"user_id": users[codes.tie_u], "friend_id": users[codes.tie_v]})
    dataset = Dataset(codes.name, pd.DataFrame({"user_id": users}), items, ties, pair_events,
                      splits["train"], splits["valid"], splits["test"])
    truth_users = pd.DataFrame({"user_id": users, "join_round": codes.join_round,
                                "activity": codes.activity})
    for t in range(codes.config.topics):
        truth_users[f"interest_{t}"] = codes.interests[:, t].astype(np.float32)
    if codes.econ_propensity is not None:
        truth_users["econ_propensity"] = codes.econ_propensity.astype(np.float32)
    truth_items = pd.DataFrame({"item_id": items["item_id"], "topic": codes.item_topic,
                                "popularity": codes.item_popularity})
    truth_ties = pd.DataFrame({"user_id": users[codes.tie_u], "friend_id": users[codes.tie_v],
                               "strength": codes.tie_strength,
                               "group": np.asarray(GROUPS, dtype=object)[codes.tie_group]})
    via = codes.event_via
    truth_events = pd.DataFrame({
        "user_id": users[codes.event_user], "item_id": item_ids[codes.event_item],
        "round": codes.event_round, "cause": _CAUSES[codes.event_cause.astype(np.int64)],
        "via": np.where(via >= 0, users[np.maximum(via, 0)], None)})
    if codes.event_intent is not None:
        truth_events["ts"] = codes.event_ts
        truth_events["intent"] = _INTENTS[codes.event_intent.astype(np.int64)]
    return World(dataset, truth_users, truth_items, truth_ties, truth_events, codes.config, codes)


def write_world(world: World, out: str | Path) -> Path:
    """Write a world directory (Parquet), atomically."""
    return write_world_codes(world.codes, out)


def write_world_codes(codes: WorldCodes, out: str | Path,
                      progress: Callable[[str], None] | None = None) -> Path:
    """Stream a world to a world directory (Parquet, one row group per block), atomically.

    Args:
        codes: the generated world.
        out: the directory; replaced only once every file is complete.
        progress: called with each table's name as it starts (e.g. to print progress).
    """
    users = pa.array(codes.user_ids())
    items = pa.array(codes.item_ids())
    say = progress or (lambda name: None)
    kinds = pa.array(list(ITEM_KINDS))
    etypes, ptypes = pa.array(list(ITEM_EVENT_TYPES)), pa.array(list(PAIR_EVENT_TYPES))
    categories = pa.array([f"cat{k}" for k in range(codes.config.merchant_categories)])
    counts = {}
    with AtomicDir(Path(out)) as tmp:
        (tmp / "truth").mkdir()
        tables: dict[str, Callable[[slice], dict[str, pa.Array]]] = {
            "users": lambda s: {"user_id": _take(users, np.arange(s.start, s.stop))},
            "items": lambda s: {
                "item_id": _take(items, np.arange(s.start, s.stop)),
                "kind": _take(kinds, codes.item_kind[s]),
                "commercial": pa.array(codes.commercial[s]),
                "owner_id": _take(items, codes.owner[s]),
                "category": _take(categories, codes.category[s]),
                "city": pa.nulls(s.stop - s.start, pa.string())},
            "ties": lambda s: {"user_id": _take(users, codes.tie_u[s]),
                               "friend_id": _take(users, codes.tie_v[s])},
            "pair_events": lambda s: {
                "user_id": _take(users, codes.pair_user[s]),
                "friend_id": _take(users, codes.pair_friend[s]),
                "type": _take(ptypes, codes.pair_type[s]), "ts": pa.array(codes.pair_ts[s]),
                "value": pa.array(codes.pair_value[s])},
        }
        sizes = {"users": codes.config.users, "items": len(codes.item_kind),
                 "ties": len(codes.tie_u), "pair_events": len(codes.pair_user)}
        for name, columns in tables.items():
            say(name)
            counts[name] = _write_blocks(tmp / f"{name}.parquet", _blocks(sizes[name], columns))
        for split in ("train", "valid", "test"):
            say(split)
            rows = np.flatnonzero(codes.split_of(split))
            counts[split] = _write_blocks(tmp / f"{split}.parquet", _blocks(len(rows), lambda s: {
                "user_id": _take(users, codes.event_user[rows[s]]),
                "item_id": _take(items, codes.event_item[rows[s]]),
                "type": _take(etypes, codes.event_type[rows[s]]),
                "ts": pa.array(codes.event_ts[rows[s]]),
                "value": pa.array(codes.event_value[rows[s]]),
                "event_id": pa.nulls(s.stop - s.start, pa.string())}))
        say("truth")
        _write_truth(codes, tmp / "truth", users, items)
        meta = {"format": "guanxi-world", "name": codes.name, "config": asdict(codes.config),
                "counts": counts}
        (tmp / "world.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def _write_truth(codes: WorldCodes, folder: Path, users: pa.Array, items: pa.Array) -> None:
    n = codes.config.users
    groups, causes = pa.array(list(GROUPS)), pa.array(list(_CAUSES))

    def truth_users(s: slice) -> dict[str, pa.Array]:
        cols = {"user_id": _take(users, np.arange(s.start, s.stop)),
                "join_round": pa.array(codes.join_round[s]), "activity": pa.array(codes.activity[s])}
        for t in range(codes.config.topics):
            cols[f"interest_{t}"] = pa.array(codes.interests[s, t].astype(np.float32))
        if codes.econ_propensity is not None:
            cols["econ_propensity"] = pa.array(codes.econ_propensity[s].astype(np.float32))
        return cols

    _write_blocks(folder / "users.parquet", _blocks(n, truth_users))
    _write_blocks(folder / "items.parquet", _blocks(len(codes.item_kind), lambda s: {
        "item_id": _take(items, np.arange(s.start, s.stop)), "topic": pa.array(codes.item_topic[s]),
        "popularity": pa.array(codes.item_popularity[s])}))
    _write_blocks(folder / "ties.parquet", _blocks(len(codes.tie_u), lambda s: {
        "user_id": _take(users, codes.tie_u[s]), "friend_id": _take(users, codes.tie_v[s]),
        "strength": pa.array(codes.tie_strength[s]), "group": _take(groups, codes.tie_group[s])}))
    intents = pa.array(list(_INTENTS))

    def truth_events(s: slice) -> dict[str, pa.Array]:
        cols = {"user_id": _take(users, codes.event_user[s]), "item_id": _take(items, codes.event_item[s]),
                "round": pa.array(codes.event_round[s]), "cause": _take(causes, codes.event_cause[s]),
                "via": _take(users, codes.event_via[s])}
        if codes.event_intent is not None:          # each event's true intent, and its time to join on
            cols["ts"] = pa.array(codes.event_ts[s])
            cols["intent"] = _take(intents, codes.event_intent[s])
        return cols

    _write_blocks(folder / "events.parquet", _blocks(len(codes.event_user), truth_events))
    if codes.episode_start is not None:           # each user's intent episodes: start time and intent
        k = codes.episode_start.shape[1]
        start = (codes.episode_start.ravel() * 86_400).astype(np.int64) + T0
        owner = np.repeat(np.arange(n), k)
        _write_blocks(folder / "episodes.parquet", _blocks(len(start), lambda s: {
            "user_id": _take(users, owner[s]), "start_ts": pa.array(start[s]),
            "intent": _take(intents, codes.episode_intent.ravel()[s])}))


def _take(values: pa.Array, codes: np.ndarray) -> pa.Array:
    """``values[codes]`` as an Arrow array; code -1 gives null."""
    codes = np.asarray(codes, dtype=np.int64)
    return values.take(pa.array(codes, mask=codes < 0))


def _blocks(rows: int, columns: Callable[[slice], dict[str, pa.Array]]) -> Iterator[pa.Table]:
    for start in range(0, max(rows, 1), BLOCK_ROWS):
        yield pa.table(columns(slice(start, min(start + BLOCK_ROWS, rows))))


def _write_blocks(path: Path, blocks: Iterator[pa.Table]) -> int:
    """Write tables with one schema to one Parquet file, one row group each; returns the rows."""
    writer, rows = None, 0
    try:
        for table in blocks:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=max(len(table), 1))
            rows += len(table)
    finally:
        if writer is not None:
            writer.close()
    return rows
