"""Loaders on the real sets in ../shared/data (skipped with a reason when absent).

Expected counts are the ones measured in ../shared/data/README.md.
"""
import pytest

from guanxi.features.coded import coded_from_dataset
from guanxi.features.datasets import RAW_PATHS, load_raw_split
from guanxi.features.load_raw import load_ciao, load_lastfm_hetrec, load_lastfm_sociallgn, load_yelp_hin
from guanxi.features.load_split import load_split_dir
from guanxi.features.named_sets import DENSE_SETS
from guanxi.features.ties import estimate_tie_strength
from tests.conftest import REPO, SHARED_DATA, shared_set


def test_lastfm_hetrec_counts():
    t = load_lastfm_hetrec(shared_set(RAW_PATHS["lastfm"]))
    assert (len(t.users), len(t.items), len(t.events), len(t.ties)) == (1892, 17632, 92834, 25434)
    assert set(t.items["kind"]) == {"content"} and not t.items["commercial"].any()
    assert t.events["value"].min() >= 1


def test_lastfm_sociallgn_split_kept_as_published():
    ds = load_lastfm_sociallgn(shared_set(RAW_PATHS["lastfm-sociallgn"]))
    assert (len(ds.train), len(ds.test), len(ds.ties)) == (74267, 18567, 25434)
    assert (len(ds.users), len(ds.items)) == (1892, 17632)


@pytest.mark.slow
def test_ciao_counts_and_mapping():
    t = load_ciao(shared_set(RAW_PATHS["ciao"]))
    assert (len(t.users), len(t.items), len(t.ties)) == (7375, 105114, 111781)
    assert len(t.events) == 282650      # distinct (user, product) pairs
    assert t.events["ts"].notna().all()
    assert t.items["category"].notna().all() and t.items["category"].nunique() <= 28


@pytest.mark.slow
def test_yelp_counts_and_mapping():
    t = load_yelp_hin(shared_set(RAW_PATHS["yelp"]))
    assert (len(t.users), len(t.items), len(t.events), len(t.ties)) == (16239, 14284, 198397, 158590)
    assert set(t.items["kind"]) == {"merchant"} and t.items["commercial"].all()
    assert t.items["city"].notna().sum() == 14267


@pytest.mark.parametrize("name", ["lastfm", pytest.param("ciao", marks=pytest.mark.slow),
                                  pytest.param("yelp", marks=pytest.mark.slow), "lastfm-sociallgn",
                                  pytest.param("yelp-dense", marks=pytest.mark.slow)])
def test_saved_split_is_the_protocol_split(name):
    shared_set(RAW_PATHS[DENSE_SETS[name].source if name in DENSE_SETS else name])
    fresh = load_raw_split(name, SHARED_DATA)
    saved = load_split_dir(REPO / "experiments" / "splits" / name)
    key = lambda df: sorted(zip(df["user_id"], df["item_id"]))
    assert key(saved.train) == key(fresh.train)
    assert key(saved.test) == key(fresh.test)
    if name != "lastfm-sociallgn":
        frac = len(fresh.test) / (len(fresh.train) + len(fresh.test))
        assert 0.18 < frac < 0.22


def test_lastfm_tie_strength_beats_best_single_feature():
    shared_set(RAW_PATHS["lastfm"])
    ds = load_raw_split("lastfm", SHARED_DATA)
    _, _, strength, report = estimate_tie_strength(coded_from_dataset(ds))
    assert report.label == "co_engagement"
    assert report.auc > report.heuristic_auc
    assert ((strength >= 0) & (strength <= 1)).all() and len(strength) == 12717
