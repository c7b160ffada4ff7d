"""The synthetic world: deterministic, valid, and carrying the structure it claims to plant."""
import numpy as np
import pandas as pd

from guanxi.features.datasets import load_dataset
from guanxi.features.world import WorldConfig, generate_world


def test_same_seed_same_world_and_other_seed_differs(tiny_world):
    again = generate_world(WorldConfig(users=2_000, seed=7))
    for name in ("users", "items", "ties", "pair_events", "train", "valid", "test"):
        assert getattr(tiny_world.dataset, name).equals(getattr(again.dataset, name)), name
    other = generate_world(WorldConfig(users=2_000, seed=8))
    assert not other.dataset.train.equals(tiny_world.dataset.train)


def test_sizes_scale_with_users(tiny_world):
    ds = tiny_world.dataset
    assert len(ds.users) == 2_000
    kinds = ds.items["kind"].value_counts()
    assert kinds["content"] == 1_600 and kinds["merchant"] == 40 and kinds["official_account"] == 10
    assert 10 <= 2 * len(ds.ties) / 2_000 <= 20
    assert ds.items.loc[ds.items["kind"] == "merchant", "commercial"].all()
    assert ds.items.loc[ds.items["kind"] == "content", "owner_id"].notna().all()


def test_no_dangling_ids_or_self_ties(tiny_world_dir):
    ds = load_dataset(tiny_world_dir)   # load_dataset validates; this would raise
    assert not (ds.ties["user_id"] == ds.ties["friend_id"]).any()
    users = set(ds.users["user_id"])
    assert set(ds.pair_events["user_id"]) <= users and set(ds.pair_events["friend_id"]) <= users


def test_split_respects_time(tiny_world):
    ds = tiny_world.dataset
    assert ds.train["ts"].max() < ds.valid["ts"].min()
    assert ds.valid["ts"].max() < ds.test["ts"].min()
    pairs = lambda df: set(zip(df["user_id"], df["item_id"]))
    assert not pairs(ds.train) & pairs(ds.test)


def test_late_joiners_are_cold_start_users_with_contacts(tiny_world):
    ds, truth = tiny_world.dataset, tiny_world.truth_users
    late = set(truth.loc[truth["join_round"] > 0, "user_id"])
    assert late and not late & set(ds.train["user_id"])
    assert late & set(ds.test["user_id"])
    contacts = set(ds.ties["user_id"]) | set(ds.ties["friend_id"])
    assert len(late & contacts) / len(late) > 0.9


def test_strong_ties_drive_social_influence(tiny_world):
    truth = tiny_world.truth_ties
    events = tiny_world.truth_events
    social = events[events["cause"] == "social"]
    assert 0.15 < len(social) / len(events) < 0.5
    key = lambda a, b: np.where(a < b, a + "|" + b, b + "|" + a)
    strength = pd.Series(truth["strength"].to_numpy(), index=key(truth["user_id"], truth["friend_id"]))
    via_strength = strength.loc[key(social["user_id"].to_numpy(), social["via"].to_numpy())]
    assert via_strength.mean() > truth["strength"].mean() + 0.15
    family = truth.loc[truth["group"] == "family", "strength"].mean()
    random = truth.loc[truth["group"] == "random", "strength"].mean()
    assert family > 0.6 > 0.2 > random


def test_pair_events_grow_with_strength_and_friends_share_tastes(tiny_world):
    ds, truth = tiny_world.dataset, tiny_world.truth_ties
    counts = pd.concat([ds.pair_events["user_id"] + "|" + ds.pair_events["friend_id"],
                        ds.pair_events["friend_id"] + "|" + ds.pair_events["user_id"]]).value_counts()
    n = counts.reindex(truth["user_id"] + "|" + truth["friend_id"], fill_value=0).to_numpy()
    strong = truth["strength"].to_numpy() > 0.6
    assert n[strong].mean() > 3 * n[~strong].mean()
    interest = tiny_world.truth_users.filter(like="interest_").to_numpy()
    idx = {u: i for i, u in enumerate(tiny_world.truth_users["user_id"])}
    a = np.array([idx[u] for u in truth["user_id"]])
    b = np.array([idx[u] for u in truth["friend_id"]])
    rng = np.random.default_rng(0)
    r = rng.integers(0, len(interest), (len(a), 2))
    cos = lambda x, y: (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert cos(interest[a], interest[b]).mean() > cos(interest[r[:, 0]], interest[r[:, 1]]).mean() + 0.05
