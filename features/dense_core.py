"""Dense cores of the raw public sets: the catalogues where item–item models are strongest.

A set's *(u, i)-core* keeps, repeatedly until nothing changes, only the items engaged by at least
``i`` distinct users and the users who engaged with at least ``u`` distinct kept items. What is
left has many interactions per item, like Douban-Book (38 training interactions per user, 21.5
per item), which none of the raw sets here has (each at most about 14 per item). Ties and pair
events keep only pairs of kept users; the split is then the protocol's per-user split of what is
left (``guanxi.features.split.split_per_user``).

The named dense sets (``guanxi.features.named_sets.DENSE_SETS``) load like the raw ones:
``--data yelp-dense``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from guanxi.features.schema import Dataset, Tables


def core_mask(user: np.ndarray, item: np.ndarray, min_per_user: int, min_per_item: int) -> np.ndarray:
    """Which (user, item) pairs lie in the ``(min_per_user, min_per_item)``-core.

    Args:
        user: user codes of distinct pairs, shape ``[E]``.
        item: item codes of the same pairs, shape ``[E]``.
        min_per_user: distinct kept items a kept user must have.
        min_per_item: distinct kept users a kept item must have.

    Returns:
        A boolean mask, shape ``[E]``.
    """
    if min_per_user < 1 or min_per_item < 1:
        raise ValueError(f"core sizes must be at least 1, got ({min_per_user}, {min_per_item})")
    keep = np.ones(len(user), dtype=bool)
    n_users = int(user.max()) + 1 if len(user) else 0
    n_items = int(item.max()) + 1 if len(item) else 0
    while True:
        per_item = np.bincount(item[keep], minlength=n_items)
        per_user = np.bincount(user[keep], minlength=n_users)
        next_keep = keep & (per_item[item] >= min_per_item) & (per_user[user] >= min_per_user)
        if next_keep.sum() == keep.sum():
            return next_keep
        keep = next_keep


def dense_core(tables: Tables, min_per_user: int, min_per_item: int) -> Tables:
    """The core of ``tables`` (see the module doc); each table keeps its columns and order.

    Raises:
        ValueError: if nothing is left.
    """
    events = tables.events
    pairs = events[["user_id", "item_id"]].astype(str)
    distinct = ~pairs.duplicated()
    user = pd.factorize(pairs["user_id"])[0]
    item = pd.factorize(pairs["item_id"])[0]
    in_core = np.zeros(len(events), dtype=bool)
    in_core[distinct.to_numpy()] = core_mask(user[distinct.to_numpy()], item[distinct.to_numpy()],
                                             min_per_user, min_per_item)
    kept_pairs = pd.MultiIndex.from_frame(pairs[in_core])
    in_core = pd.MultiIndex.from_frame(pairs).isin(kept_pairs)      # repeated rows of a kept pair too
    kept = events[in_core].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"the ({min_per_user}, {min_per_item})-core is empty")
    users = set(kept["user_id"].astype(str))
    items = set(kept["item_id"].astype(str))

    def both_kept(df: pd.DataFrame) -> pd.DataFrame:
        mask = df["user_id"].astype(str).isin(users) & df["friend_id"].astype(str).isin(users)
        return df[mask].reset_index(drop=True)

    return Tables(tables.users[tables.users["user_id"].astype(str).isin(users)].reset_index(drop=True),
                  tables.items[tables.items["item_id"].astype(str).isin(items)].reset_index(drop=True),
                  both_kept(tables.ties), both_kept(tables.pair_events), kept)


def density(dataset: Dataset) -> dict:
    """How dense a dataset's training split is: distinct training (user, item) pairs per user and
    per item of the dataset (the way published statistics count them: Douban-Book has 38 and 21.5).

    Returns:
        ``users``, ``items``, ``train_pairs``, ``per_user``, ``per_item``.
    """
    pairs = int((~dataset.train[["user_id", "item_id"]].astype(str).duplicated()).sum())
    users, items = len(dataset.users), len(dataset.items)
    return {"users": users, "items": items, "train_pairs": pairs,
            "per_user": round(pairs / max(users, 1), 1), "per_item": round(pairs / max(items, 1), 1)}
