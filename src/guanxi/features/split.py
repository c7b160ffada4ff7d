"""Per-user random splits: the 80/20 split of raw sets and the validation split carved from train."""
from __future__ import annotations

import numpy as np
import pandas as pd

from guanxi.features.schema import Dataset, Tables, empty_events

SPLIT_SEED = 2024
TEST_FRACTION = 0.2


def per_user_holdout(events: pd.DataFrame, fraction: float, seed: int, max_per_user: int = 0) -> np.ndarray:
    """Choose, per user, ``round(fraction * n_u)`` of the user's distinct items at random.

    Args:
        events: events table; several events on one (user, item) pair move together.
        fraction: share held out per user, in (0, 1).
        seed: seed of the generator (the same seed gives the same split on any machine).
        max_per_user: at most this many items per user (0 = no cap).

    Returns:
        boolean mask ``[len(events)]``, True for held-out rows.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(events) == 0:
        return np.zeros(0, dtype=bool)
    pair_codes, pairs = pd.factorize(events["user_id"].astype(str) + "\x1f" + events["item_id"].astype(str))
    first = np.unique(pair_codes, return_index=True)[1]
    pair_user = pd.factorize(events["user_id"].to_numpy()[first])[0]
    rng = np.random.default_rng(seed)
    key = rng.random(len(first))
    order = np.lexsort((key, pair_user))
    sorted_user = pair_user[order]
    counts = np.bincount(pair_user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[sorted_user]
    n_out = _held_counts(counts, fraction, max_per_user)
    held_pair = np.zeros(len(first), dtype=bool)
    held_pair[order] = rank < n_out[sorted_user]
    return held_pair[pair_codes]


def split_per_user(tables: Tables, name: str, seed: int = SPLIT_SEED,
                   test_fraction: float = TEST_FRACTION) -> Dataset:
    """The protocol's split of a raw set: per user, 80/20 of distinct items, fixed seed."""
    test_mask = per_user_holdout(tables.events, test_fraction, seed)
    events = tables.events.reset_index(drop=True)
    return Dataset(name, tables.users, tables.items, tables.ties, tables.pair_events,
                   events[~test_mask].reset_index(drop=True), empty_events(),
                   events[test_mask].reset_index(drop=True))


def _held_counts(counts: np.ndarray, fraction: float, max_per_user: int) -> np.ndarray:
    """``[U]`` items held out per user: ``round(fraction * n_u)``, capped at ``max_per_user`` (> 0)."""
    if max_per_user < 0:
        raise ValueError(f"max_per_user must be >= 0 (0 = no cap), got {max_per_user}")
    n_out = np.floor(counts * fraction + 0.5).astype(np.int64)
    return np.minimum(n_out, max_per_user) if max_per_user else n_out


def carve_validation(dataset: Dataset, fraction: float, seed: int, max_per_user: int = 0) -> Dataset:
    """Return ``dataset`` with a validation split carved from train when it has none.

    Timestamped training data is carved by time (each user's newest ``fraction`` of items), so
    validation imitates a temporal test; otherwise at random per user. ``max_per_user`` (> 0)
    caps the items carved from any one user. The test split is never touched.
    """
    if len(dataset.valid) > 0:
        return dataset
    train = dataset.train.reset_index(drop=True)
    if train["ts"].notna().all() and len(train) > 0:
        mask = _newest_per_user(train, fraction, max_per_user)
    else:
        mask = per_user_holdout(train, fraction, seed, max_per_user)
    return Dataset(dataset.name, dataset.users, dataset.items, dataset.ties, dataset.pair_events,
                   train[~mask].reset_index(drop=True), train[mask].reset_index(drop=True),
                   dataset.test)


def _newest_per_user(events: pd.DataFrame, fraction: float, max_per_user: int = 0) -> np.ndarray:
    user = pd.factorize(events["user_id"].to_numpy())[0]
    ts = events["ts"].to_numpy(dtype=np.int64)
    order = np.lexsort((-ts, user))
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - starts[user[order]]
    n_out = _held_counts(counts, fraction, max_per_user)
    mask = np.zeros(len(events), dtype=bool)
    mask[order] = rank < n_out[user[order]]
    return mask
