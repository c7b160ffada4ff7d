"""Contact facts: precomputed per version, they hold exactly what a request would compute for the
items a user's contacts engaged with, and they are cached atomically beside the version."""
from __future__ import annotations

import numpy as np

from guanxi.serving.contact_facts import COLUMNS, load_or_build
from guanxi.serving.contacts import aggregates
from guanxi.serving.recommender import Recommender
from guanxi.serving.retrieval import RetrievalConfig


def test_facts_equal_what_a_request_computes(bundle, tmp_path):
    rec = Recommender(bundle, RetrievalConfig(min_items=0, table_max_scores=10**12, table_min_items=500,
                                              table_depth=120), tmp_path)
    assert rec.facts is not None and (tmp_path / "contact-facts.npy").is_file()
    checked = 0
    for u in range(bundle.user_emb.shape[0]):
        items, item_scores, (inner_support, engaged_n, outer_strength) = rec.facts.row(u)
        scores = np.full(rec.idmap.num_items, np.nan, np.float32)
        scored = rec._finish(u, scores, True, bundle.user_emb[u])
        known = bundle.history.indptr[u + 1] > bundle.history.indptr[u]
        if not known:
            assert len(items) == 0
            continue
        assert np.array_equal(items, scored.c_items)
        if not len(items):
            continue
        inner, engaged, outer = aggregates(scored)
        assert np.array_equal(item_scores, scores[scored.c_items])          # bit for bit
        assert np.array_equal(inner_support, inner) and np.array_equal(engaged_n, engaged)
        assert np.array_equal(outer_strength.astype(np.float64), outer)
        checked += 1
    assert checked >= 50


def test_cache_round_trip_and_mismatch_rebuilds(tmp_path):
    def per_user(u: int):
        if u == 1:
            return None
        items = np.arange(u + 1)
        return items, items * 0.5, items * 0.25, items + 1, items * 0.125

    users = np.arange(4)
    first = load_or_build(tmp_path / "f.npy", 4, per_user, users)
    assert list(np.diff(first.indptr)) == [1, 0, 3, 4]
    again = load_or_build(tmp_path / "f.npy", 4, lambda u: 1 / 0, users)     # read, not rebuilt
    for name, dtype in COLUMNS:
        got = getattr(again, name)
        assert got.dtype == dtype and got.flags.c_contiguous and np.array_equal(got, getattr(first, name))
    assert np.array_equal(again.indptr, first.indptr)
    items, scores, (inner, engaged, outer) = again.row(3)
    assert items.tolist() == [0, 1, 2, 3] and engaged.tolist() == [1, 2, 3, 4] and inner.tolist() == [0, .25, .5, .75]
    other = load_or_build(tmp_path / "f.npy", 5, per_user, np.arange(5))    # another user count: rebuilt
    assert list(np.diff(other.indptr)) == [1, 0, 3, 4, 5]
    assert list(tmp_path.glob("*.tmp.npy")) == []
