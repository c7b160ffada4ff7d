"""The validation carve: per-user share, the optional per-user cap, the test split untouched."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from guanxi.features.split import carve_validation, per_user_holdout


def _events(counts: dict[str, int], ts: bool) -> pd.DataFrame:
    rows = [(u, f"i{k}", float(k) if ts else np.nan) for u, n in counts.items() for k in range(n)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])


def test_cap_holds_one_item_per_user_and_spares_light_users():
    events = _events({"heavy": 40, "mid": 12, "light": 4}, ts=False)
    held = per_user_holdout(events, 0.1, seed=3, max_per_user=1)
    per_user = events[held].groupby("user_id").size().to_dict()
    # round(0.1 n): 4, 1, 0 without the cap; the cap trims only the heavy user.
    assert per_user == {"heavy": 1, "mid": 1}
    uncapped = events[per_user_holdout(events, 0.1, seed=3)].groupby("user_id").size().to_dict()
    assert uncapped == {"heavy": 4, "mid": 1}


def test_capped_carve_by_time_takes_each_users_newest(tiny_world):
    ds = tiny_world.dataset
    carved = carve_validation(replace(ds, valid=ds.train.iloc[:0]), 0.1, 0, max_per_user=1)
    assert carved.valid.groupby("user_id").size().max() == 1
    assert len(carved.train) + len(carved.valid) == len(ds.train)
    assert carved.test.equals(ds.test)
    newest = ds.train.groupby("user_id")["ts"].max()
    assert (carved.valid.set_index("user_id")["ts"] == newest.reindex(carved.valid["user_id"]).to_numpy()).all()


def test_negative_cap_is_named():
    with pytest.raises(ValueError, match="max_per_user must be >= 0"):
        per_user_holdout(_events({"a": 10}, ts=False), 0.1, seed=0, max_per_user=-1)
