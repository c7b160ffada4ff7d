"""The precomputed candidate table: rows are each user's best unconsumed items, and a slate served
through it is the slate of full scoring (the table is an exact shortcut, not an approximation)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from guanxi.features.schema import ITEM_KINDS
from guanxi.serving.candidate_table import build_table, load_or_build, row_suffices
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recommender import Recommender
from guanxi.serving.retrieval import RetrievalConfig

DEPTH = 120


@pytest.fixture(scope="module")
def tabled(bundle, tmp_path_factory) -> Recommender:
    config = RetrievalConfig(min_items=0, table_max_scores=10**12, table_min_items=500, table_depth=DEPTH)
    return Recommender(bundle, config, tmp_path_factory.mktemp("table"))


def test_rows_are_each_users_best_unconsumed_items(bundle):
    pool = np.flatnonzero(bundle.items["kind"].astype(str).to_numpy() == "content")
    table, kept = build_table(bundle.user_emb, bundle.item_emb, pool, bundle.history, 30, block=64)
    assert table.shape == kept.shape == (bundle.user_emb.shape[0], 30)
    for u in range(0, bundle.user_emb.shape[0], 37):
        scores = bundle.item_emb[pool] @ bundle.user_emb[u]
        consumed = bundle.history.indices[bundle.history.indptr[u]:bundle.history.indptr[u + 1]]
        scores[np.isin(pool, consumed)] = -np.inf
        best = set(pool[np.argsort(-scores)[:30]].tolist())
        assert set(table[u].tolist()) == best
        np.testing.assert_allclose(kept[u], bundle.item_emb[table[u]] @ bundle.user_emb[u], rtol=1e-5, atol=1e-6)


def test_a_user_who_consumed_nearly_everything_gets_an_unusable_row():
    user_emb = np.eye(3, 2, dtype=np.float32)
    item_emb = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    history = sp.csr_matrix((np.ones(8), np.arange(8), [0, 8, 8, 8]), shape=(3, 10))
    table, _ = build_table(user_emb, item_emb, np.arange(10), history, 4)
    assert table[0, 0] == -1 and (table[1:] >= 0).all()
    assert not row_suffices(table[0], np.zeros(0, np.int64), np.zeros(0, np.int64), 1)


def test_row_suffices_counts_rows_items_that_are_neither_excluded_nor_supported():
    row = np.array([5, 9, 2, 7])
    none = np.zeros(0, np.int64)
    assert row_suffices(row, none, none, 4) and not row_suffices(row, none, none, 5)
    assert row_suffices(row, np.array([9]), none, 3) and not row_suffices(row, np.array([9]), none, 4)
    # a contact's item may lose score (a negative social weight): it does not count as a safe one
    assert not row_suffices(row, np.array([9]), np.array([2, 100]), 3)
    assert row_suffices(row, np.array([9]), np.array([2, 100]), 2)


def test_table_is_cached_and_memory_mapped(bundle, tabled, tmp_path):
    assert set(tabled.tables) == {"content"}
    pool = tabled.kind_items["content"]
    first = load_or_build(tmp_path / "t.npy", bundle.user_emb, bundle.item_emb, pool, bundle.history, DEPTH)
    again = load_or_build(tmp_path / "t.npy", bundle.user_emb, bundle.item_emb, pool, bundle.history, DEPTH)
    for got, want in zip(again, first):
        assert _mapped(got) and np.array_equal(got, want)
    assert again[1].dtype == np.float32 and np.isfinite(again[1]).all()
    assert np.array_equal(np.sort(np.asarray(tabled.tables["content"]), axis=1), np.sort(np.asarray(again[0]), axis=1))
    assert list(tmp_path.glob("*.tmp.npy")) == []


def _mapped(a: np.ndarray) -> bool:
    while a is not None and not isinstance(a, np.memmap):
        a = getattr(a, "base", None)
    return a is not None


def test_an_old_single_array_cache_is_rebuilt(bundle, tmp_path):
    pool = np.flatnonzero(bundle.items["kind"].astype(str).to_numpy() == "content")
    np.save(tmp_path / "t.npy", np.zeros((bundle.user_emb.shape[0], DEPTH), np.int32))   # items only
    items, scores = load_or_build(tmp_path / "t.npy", bundle.user_emb, bundle.item_emb, pool, bundle.history, DEPTH)
    assert np.load(tmp_path / "t.npy").shape == (bundle.user_emb.shape[0], 2, DEPTH)
    u = 3
    np.testing.assert_allclose(scores[u], bundle.item_emb[items[u]] @ bundle.user_emb[u], rtol=1e-5, atol=1e-6)


def test_slates_through_the_table_equal_full_scoring(bundle, tabled):
    exact = Recommender(bundle)
    rng = np.random.default_rng(3)
    users = list(bundle.idmap.user_ids.astype(str)[:150]) + ["stranger"]
    policy = PolicyConfig()
    used_table = fell_back = 0
    for user in users:
        k = int(rng.integers(1, 41))                     # candidates per kind up to 200 > DEPTH
        kinds = None if rng.random() < 0.6 else list(rng.choice(ITEM_KINDS, int(rng.integers(1, 3)), replace=False))
        top = exact.rank(user, 30)[0]
        muted = [str(exact.item_ids[i]) for i, _ in top[:int(rng.integers(0, 4))]]
        scored = tabled.score_many([user])[0]
        if scored.table:
            n = policy.candidates_per_kind(k)
            ok = row_suffices(scored.table["content"], exact.item_index(muted), scored.c_items, n)
            used_table += ok
            fell_back += not ok
        got = tabled.recommend(user, k, policy, kinds=kinds, muted_ids=muted, scored=scored)
        want = exact.recommend(user, k, policy, kinds=kinds, muted_ids=muted)
        assert got[0] == want[0]
        assert [s.item_idx for s in got[1]] == [s.item_idx for s in want[1]], user
        assert [s.reason for s in got[1]] == [s.reason for s in want[1]]
        np.testing.assert_allclose([s.score for s in got[1]], [s.score for s in want[1]], rtol=1e-5, atol=1e-5)
    assert used_table >= 30 and fell_back >= 10, (used_table, fell_back)     # both paths ran
