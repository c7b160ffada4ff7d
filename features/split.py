"""Per-user random splits: the 80/20 split of raw sets and the validation split carved from train."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from guanxi.features.schema import Dataset, Tables, empty_events

if TYPE_CHECKING:
    from guanxi.features.coded import CodedDataset

SPLIT_SEED = 2024
TEST_FRACTION = 0.2


def per_user_holdout(user: np.ndarray, item: np.ndarray, fraction: float, seed: int,
                     max_per_user: int = 0) -> np.ndarray:
    """Choose, per user, ``round(fraction * n_u)`` of the user's distinct items at random.

    Args:
        user, item: ``[E]`` integer codes of each event's user and item (>= 0); several events on
            one (user, item) pair move together.
        fraction: share held out per user, in (0, 1).
        seed: seed of the generator. The draw depends only on the order in which pairs first
            appear, so the same events give the same split on any machine.
        max_per_user: at most this many items per user (0 = no cap).

    Returns:
        boolean mask ``[E]``, True for held-out rows.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(user) == 0:
        return np.zeros(0, dtype=bool)
    width = int(item.max()) + 1
    key, first, pair_of_row = np.unique(user.astype(np.int64) * width + item, return_index=True,
                                        return_inverse=True)
    pair_user = key // width
    draw = np.empty(len(key))
    draw[np.argsort(first, kind="stable")] = np.random.default_rng(seed).random(len(key))  # in order of appearance
    group = np.unique(pair_user, return_inverse=True)[1].ravel()
    held_pair = _first_per_group(group, np.lexsort((draw, group)), fraction, max_per_user)
    return held_pair[pair_of_row.ravel()]


def split_per_user(tables: Tables, name: str, seed: int = SPLIT_SEED,
                   test_fraction: float = TEST_FRACTION) -> Dataset:
    """The protocol's split of a raw set: per user, 80/20 of distinct items, fixed seed."""
    events = tables.events.reset_index(drop=True)
    test_mask = per_user_holdout(pd.factorize(events["user_id"].astype(str))[0],
                                 pd.factorize(events["item_id"].astype(str))[0], test_fraction, seed)
    return Dataset(name, tables.users, tables.items, tables.ties, tables.pair_events,
                   events[~test_mask].reset_index(drop=True), empty_events(),
                   events[test_mask].reset_index(drop=True))


def _held_counts(counts: np.ndarray, fraction: float, max_per_user: int) -> np.ndarray:
    """``[U]`` items held out per user: ``round(fraction * n_u)``, capped at ``max_per_user`` (> 0)."""
    if max_per_user < 0:
        raise ValueError(f"max_per_user must be >= 0 (0 = no cap), got {max_per_user}")
    n_out = np.floor(counts * fraction + 0.5).astype(np.int64)
    return np.minimum(n_out, max_per_user) if max_per_user else n_out


def carve_validation(data: "CodedDataset", fraction: float, seed: int, max_per_user: int = 0) -> "CodedDataset":
    """Return ``data`` with a validation split carved from train when it has none.

    Timestamped training data is carved by time (each user's newest ``fraction`` of items), so
    validation imitates a temporal test; otherwise at random per user. ``max_per_user`` (> 0)
    caps the items carved from any one user. The test split is never touched.
    """
    if len(data.valid) > 0:
        return data
    train = data.train
    if len(train) > 0 and not np.isnan(train.ts).any():
        mask = _newest_per_user(train.user, train.ts, fraction, max_per_user)
    else:
        mask = per_user_holdout(train.user, train.item, fraction, seed, max_per_user)
    return replace(data, train=train.take(~mask), valid=train.take(mask))


def _newest_per_user(user: np.ndarray, ts: np.ndarray, fraction: float, max_per_user: int = 0) -> np.ndarray:
    """``[E]`` mask of each user's newest ``fraction`` of events (ties in row order)."""
    group = np.unique(user, return_inverse=True)[1].ravel()
    return _first_per_group(group, np.lexsort((-ts.astype(np.int64), group)), fraction, max_per_user)


def _first_per_group(group: np.ndarray, order: np.ndarray, fraction: float, max_per_user: int) -> np.ndarray:
    """``[n]`` mask of the first ``round(fraction * n_g)`` rows (capped) of each group ``group``
    ``[n]`` (dense codes) when the rows are taken in ``order`` (sorted by group first)."""
    counts = np.bincount(group)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[group[order]]
    n_out = _held_counts(counts, fraction, max_per_user)
    mask = np.zeros(len(group), dtype=bool)
    mask[order] = rank < n_out[group[order]]
    return mask
