"""The validation carve: per-user share, the optional per-user cap, the test split untouched."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from guanxi.features.coded import coded_from_dataset
from guanxi.features.split import carve_validation, per_user_holdout


def _events(counts: dict[str, int], ts: bool) -> pd.DataFrame:
    rows = [(u, f"i{k}", float(k) if ts else np.nan) for u, n in counts.items() for k in range(n)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])


def _holdout(events: pd.DataFrame, *args, **kwargs) -> np.ndarray:
    return per_user_holdout(pd.factorize(events["user_id"])[0], pd.factorize(events["item_id"])[0], *args, **kwargs)


def test_cap_holds_one_item_per_user_and_spares_light_users():
    events = _events({"heavy": 40, "mid": 12, "light": 4}, ts=False)
    held = _holdout(events, 0.1, seed=3, max_per_user=1)
    per_user = events[held].groupby("user_id").size().to_dict()
    # round(0.1 n): 4, 1, 0 without the cap; the cap trims only the heavy user.
    assert per_user == {"heavy": 1, "mid": 1}
    uncapped = events[_holdout(events, 0.1, seed=3)].groupby("user_id").size().to_dict()
    assert uncapped == {"heavy": 4, "mid": 1}


def test_capped_carve_by_time_takes_each_users_newest(tiny_world):
    ds = coded_from_dataset(tiny_world.dataset)
    carved = carve_validation(replace(ds, valid=ds.train.take(np.zeros(len(ds.train), bool))), 0.1, 0,
                              max_per_user=1)
    assert np.bincount(carved.valid.user).max() == 1
    assert len(carved.train) + len(carved.valid) == len(ds.train)
    assert carved.test is ds.test
    newest = pd.Series(ds.train.ts).groupby(ds.train.user).max()
    assert (carved.valid.ts == newest.reindex(carved.valid.user).to_numpy()).all()


def test_the_draw_follows_the_order_pairs_first_appear_not_their_codes():
    """The same events coded two ways (ids numbered differently) hold out the same rows."""
    events = _events({"a": 30, "b": 17, "c": 9}, ts=False).sample(frac=1.0, random_state=0)
    u, i = pd.factorize(events["user_id"])[0], pd.factorize(events["item_id"])[0]
    renumbered_u, renumbered_i = u.max() - u, i.max() - i
    np.testing.assert_array_equal(per_user_holdout(u, i, 0.3, seed=5),
                                  per_user_holdout(renumbered_u, renumbered_i, 0.3, seed=5))


def test_negative_cap_is_named():
    with pytest.raises(ValueError, match="max_per_user must be >= 0"):
        _holdout(_events({"a": 10}, ts=False), 0.1, seed=0, max_per_user=-1)
