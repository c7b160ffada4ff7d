"""The split-directory format: any dataset, fixed train/test (and optional valid) splits.

Layout (docs/contracts.md, "Split directory"):
    train.tsv, test.tsv, valid.tsv (optional): header ``user<TAB>item``, optional ``type``, ``ts``,
        ``value``, ``event_id``. Rows without ``type`` load as ``view``.
    social.tsv: header ``user<TAB>friend``.
    items.tsv (optional): header ``item<TAB>kind``, optional ``commercial``, ``owner``, ``category``,
        ``city`` (an optional extension: the merchant's city, as in Yelp).

Sizes come from the files; nothing is per dataset. Exact duplicate rows and self-ties (a user
trusting themselves) are dropped with one warning line per file; anything else malformed is an
error naming file, line and field. Users are every id in any file; items are
``items.tsv`` when present (then an event naming another item is a dangling id), otherwise every
item in any event file, loaded as kind ``content``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from guanxi.features.schema import (
    Dataset, Origin, SchemaError, check_known_ids, drop_messy_rows, empty_events, empty_pair_events, make_events,
    make_items,
    validate_events, validate_items, validate_ties,
)
from guanxi.features.tsv import AtomicDir, parse_bool, parse_float, parse_int, read_tsv, write_tsv

EVENT_FILE_COLUMNS = ("type", "ts", "value", "event_id")
ITEM_FILE_COLUMNS = ("commercial", "owner", "category", "city")


def is_split_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / "train.tsv").is_file() and (p / "test.tsv").is_file()


def read_event_file(path: Path) -> pd.DataFrame:
    """Read one ``user<TAB>item[...]`` file into a canonical events table."""
    df, origin = drop_messy_rows(*read_tsv(path, ("user", "item"), EVENT_FILE_COLUMNS))
    n = len(df)
    ts = parse_int(df["ts"], "ts", origin) if "ts" in df else None
    value = parse_float(df["value"], "value", origin) if "value" in df else None
    types = df["type"].str.strip() if "type" in df else "view"
    if not isinstance(types, str):
        types = types.where(types != "", "view")
    event_id = df["event_id"].where(df["event_id"] != "", None) if "event_id" in df else None
    events = make_events(df["user"].str.strip(), df["item"].str.strip(), types, ts, value, event_id)
    validate_events(events, origin)
    if n and events["ts"].notna().any() and (events["ts"].dropna() < 0).any():
        row = int(np.flatnonzero((events["ts"].fillna(0) < 0).to_numpy())[0])
        raise SchemaError(origin.source, origin.line(row), "ts", "negative timestamp")
    return events


def load_split_dir(path: str | Path, name: str | None = None) -> Dataset:
    """Load a split directory into a :class:`Dataset`.

    Raises:
        SchemaError: a file is missing or malformed, or a row names an unknown item.
    """
    root = Path(path)
    if not root.is_dir():
        raise SchemaError(str(root), None, None, "no such directory")
    for required in ("train.tsv", "test.tsv", "social.tsv"):
        if not (root / required).is_file():
            raise SchemaError(str(root / required), None, None,
                              "missing file; a split directory needs train.tsv, test.tsv, social.tsv")
    train = read_event_file(root / "train.tsv")
    test = read_event_file(root / "test.tsv")
    valid = read_event_file(root / "valid.tsv") if (root / "valid.tsv").is_file() else empty_events()

    social, social_origin = drop_messy_rows(*read_tsv(root / "social.tsv", ("user", "friend")), ("user", "friend"))
    ties = pd.DataFrame({"user_id": social["user"].str.strip().astype(object),
                         "friend_id": social["friend"].str.strip().astype(object)})
    validate_ties(ties, social_origin)

    if (root / "items.tsv").is_file():
        items = read_items_file(root / "items.tsv")
        for fname, ev in (("train.tsv", train), ("valid.tsv", valid), ("test.tsv", test)):
            if len(ev):
                check_known_ids(ev["item_id"], items["item_id"], "item", Origin(str(root / fname)),
                                "item in items.tsv")
    else:
        all_items = pd.unique(pd.concat([train["item_id"], valid["item_id"], test["item_id"]]))
        items = make_items(np.sort(all_items.astype(str)).astype(object), "content")

    user_ids = pd.unique(pd.concat([train["user_id"], valid["user_id"], test["user_id"],
                                    ties["user_id"], ties["friend_id"]]))
    users = pd.DataFrame({"user_id": pd.Series(np.sort(user_ids.astype(str)), dtype=object)})
    return Dataset(name=name or root.name, users=users, items=items, ties=ties,
                   pair_events=empty_pair_events(), train=train, valid=valid, test=test)


def read_items_file(path: Path, known_owners: pd.Series | None = None) -> pd.DataFrame:
    """An ``items.tsv``-format file as a canonical items table (a split directory's catalogue, or
    a catalogue update for ``guanxi retrain --items``, whose owners may be ``known_owners``).

    Raises:
        SchemaError: a missing file, a malformed row or a dangling owner, naming file, line, field.
    """
    if not Path(path).is_file():
        raise SchemaError(str(path), None, None, "no such file")
    df, origin = read_tsv(path, ("item", "kind"), ITEM_FILE_COLUMNS)
    # Without the column, merchants are commercial and nothing else is.
    commercial = parse_bool(df["commercial"], "commercial", origin) if "commercial" in df else None
    owner = df["owner"].where(df["owner"].str.strip() != "", None) if "owner" in df else None
    category = df["category"].where(df["category"].str.strip() != "", None) if "category" in df else None
    city = df["city"].where(df["city"].str.strip() != "", None) if "city" in df else None
    items = make_items(df["item"].str.strip(), df["kind"].str.strip(), commercial, owner, category, city)
    validate_items(items, origin, known_owners)
    return items


def write_split_dir(dataset: Dataset, out: str | Path) -> Path:
    """Write ``dataset`` as a split directory, atomically (all files or none).

    Optional columns are written only when they carry information, so a plain dataset stays
    a plain ``user<TAB>item`` file.
    """
    out = Path(out)
    with AtomicDir(out) as tmp:
        for fname, ev in (("train.tsv", dataset.train), ("valid.tsv", dataset.valid),
                          ("test.tsv", dataset.test)):
            if fname == "valid.tsv" and len(ev) == 0:
                continue
            write_tsv(_event_frame(ev), tmp / fname)
        write_tsv(pd.DataFrame({"user": dataset.ties["user_id"], "friend": dataset.ties["friend_id"]}),
                  tmp / "social.tsv")
        items = dataset.items
        frame = pd.DataFrame({"item": items["item_id"], "kind": items["kind"]})
        if (items["commercial"] != (items["kind"] == "merchant")).any():
            frame["commercial"] = np.where(items["commercial"], "true", "false")
        if items["owner_id"].notna().any():
            frame["owner"] = items["owner_id"]
        for col, name in (("category", "category"), ("city", "city")):
            if items[col].notna().any():
                frame[name] = items[col]
        write_tsv(frame, tmp / "items.tsv")
    return out


def _event_frame(ev: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({"user": ev["user_id"], "item": ev["item_id"]})
    if (ev["type"] != "view").any():
        frame["type"] = ev["type"]
    if ev["ts"].notna().any():
        frame["ts"] = ev["ts"]
    if ev["value"].notna().any():
        value = ev["value"]
        # Ratings and counts are whole numbers; write them without a trailing ".0".
        frame["value"] = value.astype("Int64") if (value.dropna() % 1 == 0).all() else value
    if ev["event_id"].notna().any():
        frame["event_id"] = ev["event_id"]
    return frame
