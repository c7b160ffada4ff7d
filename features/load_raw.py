"""Loaders for the raw public sets in ``../shared/data`` (see its README.md).

How each source maps onto the canonical tables (documented in README.md too):
- LastFM HetRec 2k: artists are ``content`` (non-commercial); one ``view`` event per
  (user, artist) with the listen count as ``value``; no time. Friendships as listed (both ways).
- LastFM SocialLGN split: the same data re-indexed, with its published 80/20 split kept as is.
- Ciao (Tang 2012): products are ``content`` (items people review, not sellers) with the named
  category; one ``view`` event per distinct rated (user, product), rating as ``value``, the
  review's day as ``ts``; trust directed truster -> trustee.
- Yelp HIN: businesses are ``merchant`` (commercial) with their first listed category and
  their city; one ``view`` event per (user, business), stars as ``value``; no time.

Every raw file drops its exact duplicate rows and self-ties with one warning line
(:func:`guanxi.features.schema.drop_messy_rows`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from guanxi.features.schema import (
    Dataset, Origin, SchemaError, Tables, check_known_ids, drop_messy_rows, empty_events, empty_pair_events,
    make_events, make_items, validate_ties,
)
from guanxi.features.tsv import parse_float, parse_int, read_tsv


def _users_of(*columns: pd.Series) -> pd.DataFrame:
    ids = pd.unique(pd.concat(columns, ignore_index=True).astype(str))
    order = np.argsort(ids.astype(np.int64)) if all(s.isdigit() for s in ids[:100]) else np.argsort(ids)
    return pd.DataFrame({"user_id": pd.Series(ids[order], dtype=object)})


def _ties(user: pd.Series, friend: pd.Series, origin: Origin, users: pd.DataFrame) -> pd.DataFrame:
    ties = pd.DataFrame({"user_id": user.astype(str).astype(object),
                         "friend_id": friend.astype(str).astype(object)})
    validate_ties(ties, origin, users["user_id"])
    return ties


def load_lastfm_hetrec(root: str | Path) -> Tables:
    """LastFM HetRec 2011 (``user_artists.dat``, ``user_friends.dat``)."""
    root = Path(root)
    ua, ua_origin = drop_messy_rows(*read_tsv(root / "user_artists.dat", ("userID", "artistID", "weight")))
    uf, uf_origin = drop_messy_rows(*read_tsv(root / "user_friends.dat", ("userID", "friendID")), ("userID", "friendID"))
    parse_int(ua["userID"], "userID", ua_origin)
    parse_int(ua["artistID"], "artistID", ua_origin)
    weight = parse_float(ua["weight"], "weight", ua_origin)
    events = make_events(ua["userID"], ua["artistID"], "view", value=weight)
    users = _users_of(events["user_id"])
    # Friends must be users with listening data: HetRec guarantees it, and a dangling id here
    # would mean a corrupt file.
    ties = _ties(uf["userID"], uf["friendID"], uf_origin, users)
    item_ids = pd.unique(events["item_id"])
    items = make_items(item_ids[np.argsort(item_ids.astype(np.int64))], "content")
    return Tables(users, items, ties, empty_pair_events(), events)


def load_lastfm_sociallgn(root: str | Path) -> Dataset:
    """The LastFM split shipped with SocialLGN (CSV ``train_set.txt``, ``test_set.txt``,
    ``trust.txt``), kept exactly as published; no validation split is carved here."""
    root = Path(root)
    frames = {}
    for name in ("train_set.txt", "test_set.txt"):
        df, origin = drop_messy_rows(*read_tsv(root / name, ("user", "item"), sep=","))
        parse_int(df["user"], "user", origin)
        parse_int(df["item"], "item", origin)
        frames[name] = make_events(df["user"], df["item"], "view")
    trust, t_origin = drop_messy_rows(*read_tsv(root / "trust.txt", ("user", "friend"), sep=","), ("user", "friend"))
    train, test = frames["train_set.txt"], frames["test_set.txt"]
    users = _users_of(train["user_id"], test["user_id"], trust["user"], trust["friend"])
    ties = _ties(trust["user"], trust["friend"], t_origin, users)
    item_ids = pd.unique(pd.concat([train["item_id"], test["item_id"]]))
    items = make_items(item_ids[np.argsort(item_ids.astype(np.int64))], "content")
    return Dataset("lastfm-sociallgn", users, items, ties, empty_pair_events(),
                   train, empty_events(), test)


def load_ciao(root: str | Path) -> Tables:
    """Ciao (Tang 2012): ``rating_with_timestamp.mat``, ``trustnetwork.mat``, ``catalog_ciao.txt``.

    Duplicate (user, product) rows keep the latest review (ties broken by the higher rating).
    A product listed under several categories keeps its most frequent one.
    """
    from scipy.io import loadmat  # only this loader needs scipy's MATLAB reader

    root = Path(root)
    rating_path = root / "rating_with_timestamp.mat"
    trust_path = root / "trustnetwork.mat"
    rating = _load_mat(rating_path, "rating", 6, loadmat)
    trust = _load_mat(trust_path, "trustnetwork", 2, loadmat)
    source = f"{rating_path}['rating']"
    frame, _ = drop_messy_rows(pd.DataFrame(rating, columns=["user", "item", "category", "rating", "helpful", "ts"]),
                               Origin(source, first_line=1))
    if (frame[["user", "item"]] <= 0).any().any():
        row = int(np.flatnonzero((frame[["user", "item"]] <= 0).any(axis=1).to_numpy())[0])
        raise SchemaError(source, row + 1, "userid/productid", "ids must be positive")
    frame = frame.sort_values(["user", "item", "ts", "rating"], kind="stable")
    frame = frame.drop_duplicates(["user", "item"], keep="last")

    categories = _read_catalog(root / "catalog_ciao.txt")
    cat_of = (frame.groupby(["item", "category"]).size().rename("n").reset_index()
              .sort_values(["item", "n", "category"], ascending=[True, False, True])
              .drop_duplicates("item"))
    unknown = ~cat_of["category"].isin(categories.index)
    if unknown.any():
        raise SchemaError(source, None, "categoryid",
                          f"category {int(cat_of['category'][unknown].iloc[0])} not in catalog_ciao.txt")
    items = make_items(cat_of["item"].to_numpy(), "content", False,
                       category=categories.loc[cat_of["category"]].to_numpy())
    events = make_events(frame["user"].to_numpy(), frame["item"].to_numpy(), "view",
                         ts=frame["ts"].to_numpy(), value=frame["rating"].to_numpy())
    users = _users_of(events["user_id"])
    trust, t_origin = drop_messy_rows(pd.DataFrame(trust, columns=["truster", "trustee"]),
                                      Origin(f"{trust_path}['trustnetwork']", first_line=1), ("truster", "trustee"))
    ties = _ties(trust["truster"], trust["trustee"], t_origin, users)
    return Tables(users, items, ties, empty_pair_events(), events.reset_index(drop=True))


def _load_mat(path: Path, key: str, ncols: int, loadmat) -> np.ndarray:
    if not path.is_file():
        raise SchemaError(str(path), None, None, "no such file")
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise SchemaError(str(path), None, None, f"not a readable MATLAB file: {exc}") from exc
    if key not in mat:
        raise SchemaError(str(path), None, key, f"missing variable; have {sorted(k for k in mat if not k.startswith('__'))}")
    arr = np.asarray(mat[key]).astype(np.int64)  # trust ids are stored as uint16
    if arr.ndim != 2 or arr.shape[1] != ncols:
        raise SchemaError(str(path), None, key, f"expected {ncols} columns, found shape {arr.shape}")
    return arr


def _read_catalog(path: Path) -> pd.Series:
    if not path.is_file():
        raise SchemaError(str(path), None, None, "no such file")
    ids, names = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            head, _, name = line.strip().partition(" ")
            if not head.isdigit() or not name:
                raise SchemaError(str(path), lineno, "categoryid", f"expected 'id name', got {line.strip()!r}")
            ids.append(int(head))
            names.append(name.strip())
    return pd.Series(names, index=ids)


def load_yelp_hin(root: str | Path) -> Tables:
    """Yelp HIN: ``user_business.dat``, ``user_user.dat``, ``business_category.dat``,
    ``business_city.dat`` (tab-separated, no header, 1-based ids)."""
    root = Path(root)
    ub, ub_origin = drop_messy_rows(*_read_headerless(root / "user_business.dat", ("user", "business", "rating")))
    uu, uu_origin = drop_messy_rows(*_read_headerless(root / "user_user.dat", ("user", "friend", "weight")),
                                    ("user", "friend"))
    bc, _ = _read_headerless(root / "business_category.dat", ("business", "category", "weight"))
    bcity, _ = _read_headerless(root / "business_city.dat", ("business", "city", "weight"))
    for col in ("user", "business"):
        parse_int(ub[col], col, ub_origin)
    stars = parse_float(ub["rating"], "rating", ub_origin)
    events = make_events(ub["user"], ub["business"], "view", value=stars)
    users = _users_of(events["user_id"], uu["user"], uu["friend"])
    ties = _ties(uu["user"], uu["friend"], uu_origin, users)
    business = pd.unique(pd.concat([events["item_id"], bc["business"], bcity["business"]]).astype(str))
    business = business[np.argsort(business.astype(np.int64))]
    first_cat = bc.drop_duplicates("business").set_index("business")["category"]
    city = bcity.drop_duplicates("business").set_index("business")["city"]
    items = make_items(business, "merchant", True,
                       category=first_cat.reindex(business).to_numpy(),
                       city=city.reindex(business).to_numpy())
    check_known_ids(events["item_id"], items["item_id"], "business", ub_origin, "business")
    return Tables(users, items, ties, empty_pair_events(), events)


def _read_headerless(path: Path, names: tuple[str, ...]) -> tuple[pd.DataFrame, Origin]:
    if not path.is_file():
        raise SchemaError(str(path), None, None, "no such file")
    try:
        df = pd.read_csv(path, sep="\t", header=None, names=list(names), dtype=str,
                         keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise SchemaError(str(path), None, None, f"malformed row: {exc}") from exc
    origin = Origin(str(path), first_line=1)
    for col in names:
        empty = (df[col].str.strip() == "").to_numpy()
        if empty.any():
            raise SchemaError(str(path), origin.line(int(np.flatnonzero(empty)[0])), col, "missing value")
    return df, origin
