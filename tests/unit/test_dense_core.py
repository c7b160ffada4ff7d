"""The dense cores behind the named dense sets (features/dense_core.py)."""
import numpy as np
import pandas as pd
import pytest

from guanxi.features.dense_core import core_mask, dense_core
from guanxi.features.schema import Tables, empty_pair_events, make_events, make_items


def test_the_core_holds_its_bounds_and_is_the_largest_such_set():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 60, 900)
    item = (rng.pareto(1.2, 900) * 5).astype(int) % 200       # a few popular items, a long tail
    pairs = np.unique(np.stack([user, item], 1), axis=0)
    user, item = pairs[:, 0], pairs[:, 1]
    keep = core_mask(user, item, 5, 4)
    assert 0 < keep.sum() < len(keep)
    assert (np.bincount(user[keep])[np.unique(user[keep])] >= 5).all()
    assert (np.bincount(item[keep])[np.unique(item[keep])] >= 4).all()
    # Maximal: every dropped pair has its user or its item outside the core.
    kept_users, kept_items = set(user[keep]), set(item[keep])
    dropped = ~keep
    assert not any(u in kept_users and i in kept_items for u, i in zip(user[dropped], item[dropped]))


def test_a_pair_that_only_reaches_the_bound_through_a_dropped_item_goes_too():
    # u0 has two items; i9 has one user, so it goes, which leaves u0 one item, so u0 goes too.
    user = np.array([0, 0, 1, 1, 2, 2])
    item = np.array([0, 9, 1, 2, 1, 2])
    keep = core_mask(user, item, 2, 2)
    assert keep.tolist() == [False, False, True, True, True, True]


def test_core_sizes_below_one_are_refused():
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        core_mask(np.array([0]), np.array([0]), 0, 3)


def test_the_tables_keep_only_what_the_core_holds():
    events = make_events(np.array(["a", "a", "b", "b", "c", "c", "a"], dtype=object),
                         np.array(["x", "y", "x", "y", "x", "z", "x"], dtype=object), "view")
    users = pd.DataFrame({"user_id": pd.Series(["a", "b", "c"], dtype=object)})
    ties = pd.DataFrame({"user_id": pd.Series(["a", "a", "b"], dtype=object),
                         "friend_id": pd.Series(["b", "c", "c"], dtype=object)})
    core = dense_core(Tables(users, make_items(np.array(["x", "y", "z"], dtype=object), "content"), ties,
                             empty_pair_events(), events), 2, 2)
    assert core.users["user_id"].tolist() == ["a", "b"]
    assert core.items["item_id"].tolist() == ["x", "y"]
    assert list(zip(core.ties["user_id"], core.ties["friend_id"])) == [("a", "b")]
    assert sorted(zip(core.events["user_id"], core.events["item_id"])) == [
        ("a", "x"), ("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]     # a repeated pair keeps its rows
    with pytest.raises(ValueError, match="empty"):
        dense_core(core, 3, 3)
