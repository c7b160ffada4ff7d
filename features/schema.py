"""Canonical tables (docs/contracts.md) and the checks every loader runs on them.

All tables are pandas DataFrames with fixed columns. Ids are strings at every edge; the
closed lists of item kinds and event types live here and nowhere else.

users:        user_id
items:        item_id, kind, commercial, owner_id (nullable), category (nullable), city (nullable)
ties:         user_id, friend_id (directed as given; symmetrise on purpose)
pair_events:  user_id, friend_id, type, ts (nullable Int64), value (float, NaN = none)
events:       user_id, item_id, type, ts (nullable Int64), value (float), event_id (nullable)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from guanxi.features.id_rules import first_bad_id

ITEM_KINDS: tuple[str, ...] = ("official_account", "merchant", "content")
ITEM_EVENT_TYPES: tuple[str, ...] = (
    "view", "read", "like", "comment", "share", "follow", "click", "pay", "impression", "hide",
)
# Feedback that is not an interaction: "see fewer" (``hide``) says the opposite of interest. Such an
# event is known (the item is never recommended back) but never a training edge or positive.
NOT_INTERACTIONS: frozenset[str] = frozenset({"hide"})
PAIR_EVENT_TYPES: tuple[str, ...] = ("message", "red_packet", "moment_like", "moment_comment")

logger = logging.getLogger(__name__)

USER_COLUMNS = ("user_id",)
ITEM_COLUMNS = ("item_id", "kind", "commercial", "owner_id", "category", "city")
TIE_COLUMNS = ("user_id", "friend_id")
PAIR_EVENT_COLUMNS = ("user_id", "friend_id", "type", "ts", "value")
EVENT_COLUMNS = ("user_id", "item_id", "type", "ts", "value", "event_id")


class SchemaError(ValueError):
    """Bad input data. The message names the file, the line (1-based, as an editor counts
    it, header included) and the field, so the user can open the file at that spot."""

    def __init__(self, source: str, line: int | None, field: str | None, problem: str) -> None:
        where = source
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.field = field


@dataclass(frozen=True)
class Origin:
    """Where the rows of a table came from, to turn a row position into a file line.

    Args:
        source: file path (or a description such as ``rating.mat['rating']``).
        first_line: the line number of row 0 (2 for a file with one header line).
        lines: optional explicit line number per row (after filtering, e.g. comments).
    """

    source: str
    first_line: int = 2
    lines: np.ndarray | None = None

    def line(self, row: int) -> int:
        if self.lines is not None:
            return int(self.lines[row])
        return self.first_line + int(row)


@dataclass(frozen=True)
class Tables:
    """The canonical tables of one dataset before any split."""

    users: pd.DataFrame
    items: pd.DataFrame
    ties: pd.DataFrame
    pair_events: pd.DataFrame
    events: pd.DataFrame


@dataclass(frozen=True)
class Dataset:
    """Canonical tables plus the event splits a model is trained and judged on.

    ``train`` holds every event a model may learn from; ``valid`` (may be empty) is carved
    from training time and is the only split used for early stopping and tuning; ``test``
    is for reporting only.
    """

    name: str
    users: pd.DataFrame
    items: pd.DataFrame
    ties: pd.DataFrame
    pair_events: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    @property
    def all_events(self) -> pd.DataFrame:
        return pd.concat([self.train, self.valid, self.test], ignore_index=True)


def empty_events() -> pd.DataFrame:
    """An events table with no rows and the canonical dtypes."""
    return make_events(np.array([], dtype=object), np.array([], dtype=object))


def empty_pair_events() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.Series([], dtype=object), "friend_id": pd.Series([], dtype=object),
        "type": pd.Series([], dtype=object), "ts": pd.Series([], dtype="Int64"),
        "value": pd.Series([], dtype="float64"),
    })


def make_events(
    user_id: np.ndarray | pd.Series,
    item_id: np.ndarray | pd.Series,
    type_: np.ndarray | pd.Series | str = "view",
    ts: np.ndarray | pd.Series | None = None,
    value: np.ndarray | pd.Series | None = None,
    event_id: np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """Build an events table with canonical columns and dtypes from column arrays."""
    n = len(user_id)
    return pd.DataFrame({
        "user_id": _as_str(user_id),
        "item_id": _as_str(item_id),
        "type": _as_str(np.full(n, type_, dtype=object) if isinstance(type_, str) else type_),
        "ts": pd.array(np.asarray(ts) if ts is not None else [pd.NA] * n, dtype="Int64"),
        "value": np.asarray(value, dtype="float64") if value is not None else np.full(n, np.nan),
        "event_id": _as_str(event_id) if event_id is not None else pd.Series([None] * n, dtype=object),
    })


def make_items(
    item_id: np.ndarray | pd.Series,
    kind: np.ndarray | pd.Series | str = "content",
    commercial: np.ndarray | pd.Series | bool | None = None,
    owner_id: np.ndarray | pd.Series | None = None,
    category: np.ndarray | pd.Series | None = None,
    city: np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """Build an items table. ``commercial`` defaults to ``kind == 'merchant'``."""
    n = len(item_id)
    kinds = _as_str(np.full(n, kind, dtype=object) if isinstance(kind, str) else kind)
    if commercial is None:
        commercial = (kinds == "merchant").to_numpy()
    elif isinstance(commercial, bool):
        commercial = np.full(n, commercial)
    return pd.DataFrame({
        "item_id": _as_str(item_id),
        "kind": kinds,
        "commercial": np.asarray(commercial, dtype=bool),
        "owner_id": _as_str(owner_id) if owner_id is not None else pd.Series([None] * n, dtype=object),
        "category": _as_str(category) if category is not None else pd.Series([None] * n, dtype=object),
        "city": _as_str(city) if city is not None else pd.Series([None] * n, dtype=object),
    })


def _as_str(values: np.ndarray | pd.Series) -> pd.Series:
    """Ids as Python-object strings; missing values stay None."""
    s = pd.Series(values).reset_index(drop=True)
    mask = s.isna().to_numpy()
    arr = s.astype(str).to_numpy(dtype=object)
    arr[mask] = None
    return pd.Series(arr, dtype=object)


def check_closed_list(
    values: pd.Series, allowed: tuple[str, ...], field: str, origin: Origin
) -> None:
    """Raise :class:`SchemaError` at the first value outside ``allowed``."""
    bad = ~values.isin(allowed).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(origin.source, origin.line(row), field,
                          f"unknown value {values.iloc[row]!r}; expected one of {list(allowed)}")


def check_known_ids(
    values: pd.Series, known: pd.Series | np.ndarray, field: str, origin: Origin, what: str
) -> None:
    """Raise :class:`SchemaError` at the first id that is not in ``known`` (a dangling id)."""
    bad = ~values.isin(known).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(origin.source, origin.line(row), field,
                          f"dangling id {values.iloc[row]!r}: no such {what} "
                          f"({int(bad.sum())} rows like it)")


def check_no_missing(values: pd.Series, field: str, origin: Origin) -> None:
    bad = values.isna().to_numpy()
    if values.dtype == object:
        bad = bad | (values.astype(str).str.len() == 0).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(origin.source, origin.line(row), field, "missing value")


def check_ids(values: pd.Series, field: str, origin: Origin) -> None:
    """Raise :class:`SchemaError` at the first value that is not a valid id
    (:mod:`guanxi.features.id_rules`: printable, trimmed, non-empty, length-capped)."""
    bad = first_bad_id(values)
    if bad is not None:
        row, problem = bad
        raise SchemaError(origin.source, origin.line(row), field, f"id {problem}")


def validate_events(events: pd.DataFrame, origin: Origin, items_known: pd.Series | None = None,
                    users_known: pd.Series | None = None) -> None:
    """Check an events table: columns, closed event types, ids present, and (when given)
    no dangling user or item ids. Raises :class:`SchemaError`."""
    _check_columns(events, EVENT_COLUMNS, origin)
    check_no_missing(events["user_id"], "user_id", origin)
    check_no_missing(events["item_id"], "item_id", origin)
    for field in ("user_id", "item_id", "event_id"):
        check_ids(events[field], field, origin)
    check_closed_list(events["type"], ITEM_EVENT_TYPES, "type", origin)
    if users_known is not None:
        check_known_ids(events["user_id"], users_known, "user_id", origin, "user")
    if items_known is not None:
        check_known_ids(events["item_id"], items_known, "item_id", origin, "item")


def validate_items(items: pd.DataFrame, origin: Origin, known_owners: pd.Series | None = None) -> None:
    """Check an items table: columns, closed kinds, unique ids, owners that exist (in the table, or
    among ``known_owners``: accounts a catalogue update may name without repeating them)."""
    _check_columns(items, ITEM_COLUMNS, origin)
    check_no_missing(items["item_id"], "item_id", origin)
    check_ids(items["item_id"], "item_id", origin)
    check_ids(items["owner_id"], "owner", origin)
    check_closed_list(items["kind"], ITEM_KINDS, "kind", origin)
    dup = items["item_id"].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise SchemaError(origin.source, origin.line(row), "item_id",
                          f"duplicate item {items['item_id'].iloc[row]!r}")
    owners = items["owner_id"]
    has_owner = owners.notna().to_numpy()
    if has_owner.any():
        sub = owners[has_owner]
        known = items["item_id"][items["kind"] == "official_account"]
        if known_owners is not None:
            known = pd.concat([known, known_owners.astype(object)])
        bad = ~sub.isin(known).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(has_owner)[np.flatnonzero(bad)[0]])
            raise SchemaError(origin.source, origin.line(row), "owner",
                              f"dangling id {owners.iloc[row]!r}: owner must be an official_account item")


def drop_messy_rows(df: pd.DataFrame, origin: Origin,
                    pair: tuple[str, str] | None = None) -> tuple[pd.DataFrame, Origin]:
    """Drop the rows public dumps are known to carry that are not errors: exact duplicate rows, and
    (for a tie file, columns ``pair``) self-ties, a user trusting themselves. One warning line per
    file says how many of each, with an example line; the returned origin keeps the file's line
    numbers for the rows kept, so later errors still point at the right line.

    Args:
        df: rows as read, in file order (row ``r`` is line ``origin.line(r)``).
        origin: where they came from.
        pair: the two id columns of a tie file.
    """
    self_tie = (df[pair[0]].astype(str) == df[pair[1]].astype(str)).to_numpy() if pair and len(df) else \
        np.zeros(len(df), bool)
    duplicate = df.duplicated(keep="first").to_numpy() & ~self_tie if len(df) else np.zeros(0, bool)
    if not (self_tie.any() or duplicate.any()):
        return df, origin
    parts = []
    if self_tie.any():
        r = int(np.flatnonzero(self_tie)[0])
        parts.append(f"{int(self_tie.sum())} self-ties (e.g. line {origin.line(r)}: "
                     f"{str(df[pair[0]].iloc[r])!r} -> {str(df[pair[1]].iloc[r])!r})")
    if duplicate.any():
        r = int(np.flatnonzero(duplicate)[0])
        parts.append(f"{int(duplicate.sum())} exact duplicate rows (e.g. line {origin.line(r)})")
    logger.warning("%s: dropped %s", origin.source, " and ".join(parts))
    keep = np.flatnonzero(~(self_tie | duplicate))
    lines = origin.lines[keep] if origin.lines is not None else origin.first_line + keep
    return df.iloc[keep].reset_index(drop=True), Origin(origin.source, origin.first_line, np.asarray(lines))


def validate_ties(ties: pd.DataFrame, origin: Origin, users_known: pd.Series | None = None) -> None:
    """Check a ties table: columns, no self-ties, no dangling users."""
    _check_columns(ties, TIE_COLUMNS, origin)
    check_no_missing(ties["user_id"], "user_id", origin)
    check_no_missing(ties["friend_id"], "friend_id", origin)
    check_ids(ties["user_id"], "user_id", origin)
    check_ids(ties["friend_id"], "friend_id", origin)
    self_tie = (ties["user_id"] == ties["friend_id"]).to_numpy()
    if self_tie.any():
        row = int(np.flatnonzero(self_tie)[0])
        raise SchemaError(origin.source, origin.line(row), "friend_id",
                          f"self-tie of user {ties['user_id'].iloc[row]!r}")
    if users_known is not None:
        check_known_ids(ties["user_id"], users_known, "user_id", origin, "user")
        check_known_ids(ties["friend_id"], users_known, "friend_id", origin, "user")


def validate_pair_events(pair_events: pd.DataFrame, origin: Origin) -> None:
    _check_columns(pair_events, PAIR_EVENT_COLUMNS, origin)
    check_ids(pair_events["user_id"], "user_id", origin)
    check_ids(pair_events["friend_id"], "friend_id", origin)
    check_closed_list(pair_events["type"], PAIR_EVENT_TYPES, "type", origin)


def _check_columns(df: pd.DataFrame, columns: tuple[str, ...], origin: Origin) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(origin.source, None, missing[0], f"missing column; have {list(df.columns)}")
