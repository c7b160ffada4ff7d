"""A dataset as integer codes: what the feature pipeline needs at a million users.

A :class:`CodedDataset` holds only NumPy arrays of codes (users ``0..U-1`` and items ``0..I-1`` in
the order of the users and items tables, event types as indices into the closed lists) and the
ids as Arrow string arrays, never a Python string per row. It is read straight from a world
directory's Parquet files (:func:`load_coded_world`, id columns decoded through each row group's
dictionary) or converted from a :class:`Dataset` (:func:`coded_from_dataset`), so that one
integer implementation of tie strength, circles and the graph serves both.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from guanxi.features.ids import IdCounts, IdMap
from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS, PAIR_EVENT_TYPES, Dataset, SchemaError


@dataclass(frozen=True)
class CodedEvents:
    """Item events as codes, each ``[E]``: ``user``, ``item``, ``type`` (index into
    ``ITEM_EVENT_TYPES``), ``ts`` (float seconds, NaN when untimed)."""

    user: np.ndarray
    item: np.ndarray
    type: np.ndarray
    ts: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> "CodedEvents":
        """The events at ``rows`` (a ``[E]`` mask or an index array), in order."""
        return CodedEvents(self.user[rows], self.item[rows], self.type[rows], self.ts[rows])

    @staticmethod
    def concat(parts: list["CodedEvents"]) -> "CodedEvents":
        """The events of ``parts`` one after another."""
        return CodedEvents(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in ("user", "item", "type", "ts")))


@dataclass(frozen=True)
class CodedDataset(IdCounts):
    """A dataset as codes.

    Args:
        name: the dataset's name.
        user_ids, item_ids: ``[U]`` and ``[I]`` ids (Arrow strings) in code order.
        item_kind: ``[I]`` index into ``ITEM_KINDS``; commercial: ``[I]`` bool;
            owner: ``[I]`` item code of the publishing account or -1; category: ``[I]`` Arrow
            strings (nullable).
        tie_user, tie_friend: ``[T]`` ties as listed (directed as given).
        pair_user, pair_friend, pair_type, pair_ts: ``[P]`` pair events (type index into
            ``PAIR_EVENT_TYPES``, ts float seconds, NaN when untimed).
        train, valid, test: the event splits.
    """

    name: str
    user_ids: pa.Array
    item_ids: pa.Array
    item_kind: np.ndarray
    commercial: np.ndarray
    owner: np.ndarray
    tie_user: np.ndarray
    tie_friend: np.ndarray
    pair_user: np.ndarray
    pair_friend: np.ndarray
    pair_type: np.ndarray
    pair_ts: np.ndarray
    train: CodedEvents
    valid: CodedEvents
    test: CodedEvents
    category: pa.Array | None = None

    def items_frame(self) -> pd.DataFrame:
        """The items table (``item_id, kind, commercial, owner_id, category``) in code order: the
        catalogue at the edge, for the bundle."""
        ids = self.item_ids.to_numpy(zero_copy_only=False).astype(object)
        owner = np.where(self.owner >= 0, ids[np.maximum(self.owner, 0)], None)
        category = [None] * self.num_items if self.category is None else \
            self.category.to_numpy(zero_copy_only=False).astype(object)
        return pd.DataFrame({"item_id": ids, "kind": np.asarray(ITEM_KINDS, dtype=object)[self.item_kind],
                             "commercial": self.commercial.astype(bool), "owner_id": owner,
                             "category": category})


def _closed(values: pd.Series | np.ndarray, allowed: tuple[str, ...], source: str, field: str,
            first_line: int) -> np.ndarray:
    lut = pd.Index(allowed)
    codes = lut.get_indexer(pd.Index(np.asarray(values, dtype=object)))
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise SchemaError(source, first_line + row, field,
                          f"unknown value {np.asarray(values, dtype=object)[row]!r}; expected one of {list(allowed)}")
    return codes.astype(np.int8)


def code_events(events: pd.DataFrame, idmap: IdMap) -> CodedEvents:
    """An events table as codes against ``idmap`` (-1 for an id it does not hold).

    Raises:
        SchemaError: an event type outside ``ITEM_EVENT_TYPES``.
    """
    return CodedEvents(idmap.user_index(events["user_id"]).astype(np.int32),
                       idmap.item_index(events["item_id"]).astype(np.int32),
                       _closed(events["type"], ITEM_EVENT_TYPES, "events", "type", 0),
                       events["ts"].to_numpy(dtype=np.float64, na_value=np.nan))


def coded_from_dataset(dataset: Dataset) -> CodedDataset:
    """Codes of a (validated) :class:`Dataset`, users and items in table order."""
    idmap = IdMap(dataset.users["user_id"].to_numpy(), dataset.items["item_id"].to_numpy())
    code_user = lambda ids: idmap.user_index(ids).astype(np.int32)  # noqa: E731
    pe, items = dataset.pair_events, dataset.items
    owner = np.where(items["owner_id"].notna(), idmap.item_index(items["owner_id"].fillna("")), -1)
    return CodedDataset(
        dataset.name, pa.array(idmap.user_ids.astype(str).astype(object), pa.string()),
        pa.array(idmap.item_ids.astype(str).astype(object), pa.string()),
        _closed(items["kind"], ITEM_KINDS, "items", "kind", 0),
        items["commercial"].to_numpy(dtype=bool), owner.astype(np.int32),
        code_user(dataset.ties["user_id"]), code_user(dataset.ties["friend_id"]),
        code_user(pe["user_id"]), code_user(pe["friend_id"]),
        _closed(pe["type"], PAIR_EVENT_TYPES, "pair_events", "type", 0),
        pe["ts"].to_numpy(dtype=np.float64, na_value=np.nan),
        code_events(dataset.train, idmap), code_events(dataset.valid, idmap), code_events(dataset.test, idmap),
        pa.array(items["category"].astype(object).where(items["category"].notna(), None).to_numpy(dtype=object),
                 pa.string()))


class _Codebook:
    """Turns an Arrow string column into codes against a fixed id list, chunk by chunk."""

    def __init__(self, ids: pa.Array, what: str) -> None:
        self.ids = ids
        self.what = what
        if pc.count_distinct(ids).as_py() != len(ids):
            counts = pc.value_counts(ids)
            dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
            raise ValueError(f"duplicate {what} id {dup!r}")

    def codes(self, column: pa.ChunkedArray, source: str, field: str, nullable: bool = False) -> np.ndarray:
        """``[n]`` int32 codes; -1 for nulls when ``nullable``. Raises :class:`SchemaError` at
        the first missing value or dangling id (line = row + 1: Parquet has no header line)."""
        out = np.empty(len(column), dtype=np.int32)
        at = 0
        # A few large pieces: each lookup builds its hash of the ids once.
        for piece in _pieces(column, 8_000_000):
            found = pc.index_in(piece, value_set=self.ids)
            codes = found.fill_null(-1).to_numpy().astype(np.int32)
            missing = piece.is_null().to_numpy(zero_copy_only=False) if piece.null_count else None
            if missing is not None and missing.any() and not nullable:
                raise SchemaError(source, at + int(np.flatnonzero(missing)[0]) + 1, field, "missing value")
            bad = codes < 0
            if missing is not None:
                bad &= ~missing
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise SchemaError(source, at + row + 1, field,
                                  f"dangling id {piece[row].as_py()!r}: no such {self.what} "
                                  f"({int(bad.sum())} rows like it in this block)")
            out[at:at + len(piece)] = codes
            at += len(piece)
        return out


def _pieces(column: pa.ChunkedArray, rows: int) -> list[pa.Array]:
    """The column as plain arrays of about ``rows`` rows (dictionary columns decoded)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return [column.slice(s, rows).combine_chunks() for s in range(0, len(column), rows)] or \
        [pa.array([], column.type)]


def _read(path: Path, columns: list[str]) -> pa.Table:
    if not path.is_file():
        raise SchemaError(str(path), None, None, "missing file in world directory")
    have = pq.read_schema(path).names
    for col in columns:
        if col not in have:
            raise SchemaError(str(path), None, col, f"missing column; have {have}")
    return pq.read_table(path, columns=columns)


def _closed_column(column: pa.ChunkedArray, allowed: tuple[str, ...], source: str, field: str) -> np.ndarray:
    allowed_codes = _Codebook(pa.array(list(allowed)), f"{field} in {list(allowed)}")
    try:
        return allowed_codes.codes(column, source, field).astype(np.int8)
    except SchemaError as err:
        raise SchemaError(source, err.line, field, str(err).split(": ", 1)[1].replace(
            "dangling id", "unknown value")) from None


def _ts(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy().astype(np.float64) if column.null_count == 0 else \
        column.cast(pa.float64()).fill_null(np.nan).to_numpy()


def load_coded_world(path: str | Path) -> CodedDataset:
    """Read a world directory (``guanxi world``) as codes, checking ids and closed lists."""
    root = Path(path)
    meta = json.loads((root / "world.json").read_text())
    users = _Codebook(_read(root / "users.parquet", ["user_id"]).column("user_id").cast(pa.string()).combine_chunks(), "user")
    items_t = _read(root / "items.parquet", ["item_id", "kind", "commercial", "owner_id", "category"])
    item_ids = items_t.column("item_id").cast(pa.string()).combine_chunks()
    items = _Codebook(item_ids, "item")
    src = str(root / "items.parquet")
    kind = _closed_column(items_t.column("kind"), ITEM_KINDS, src, "kind")
    owner = items.codes(items_t.column("owner_id"), src, "owner_id", nullable=True)
    ties = _read(root / "ties.parquet", ["user_id", "friend_id"])
    src = str(root / "ties.parquet")
    tie_user = users.codes(ties.column("user_id"), src, "user_id")
    tie_friend = users.codes(ties.column("friend_id"), src, "friend_id")
    pe = _read(root / "pair_events.parquet", ["user_id", "friend_id", "type", "ts"])
    src = str(root / "pair_events.parquet")
    splits = {}
    for name in ("train", "valid", "test"):
        table = _read(root / f"{name}.parquet", ["user_id", "item_id", "type", "ts"])
        file = str(root / f"{name}.parquet")
        splits[name] = CodedEvents(users.codes(table.column("user_id"), file, "user_id"),
                                   items.codes(table.column("item_id"), file, "item_id"),
                                   _closed_column(table.column("type"), ITEM_EVENT_TYPES, file, "type"),
                                   _ts(table.column("ts")))
        del table
    return CodedDataset(
        meta.get("name", root.name), users.ids, item_ids, kind,
        items_t.column("commercial").to_numpy().astype(bool), owner, tie_user, tie_friend,
        users.codes(pe.column("user_id"), src, "user_id"), users.codes(pe.column("friend_id"), src, "friend_id"),
        _closed_column(pe.column("type"), PAIR_EVENT_TYPES, src, "type"), _ts(pe.column("ts")),
        splits["train"], splits["valid"], splits["test"],
        items_t.column("category").cast(pa.string()).combine_chunks())


def read_truth_ties(root: str | Path, data: CodedDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A world's true ties ``(user, friend, strength)`` as codes, or None when it has none."""
    path = Path(root) / "truth" / "ties.parquet"
    if not path.is_file():
        return None
    table = _read(path, ["user_id", "friend_id", "strength"])
    users = _Codebook(data.user_ids, "user")
    return (users.codes(table.column("user_id"), str(path), "user_id"),
            users.codes(table.column("friend_id"), str(path), "friend_id"),
            table.column("strength").to_numpy())
