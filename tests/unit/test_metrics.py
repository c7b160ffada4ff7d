"""Every metric: a hand-computed case and a comparison with a naive loop."""
import math

import numpy as np
import pytest

from guanxi.training.metrics import hits_matrix, mean_metrics, metric_keys, user_metrics


def test_hand_computed_case():
    # User 0: test {1, 4}; ranked [1, 2, 4]: hits at ranks 0 and 2.
    hits = np.array([[True, False, True]])
    m = user_metrics(hits, np.array([2]), k=3)
    assert m["recall"][0] == pytest.approx(1.0)
    assert m["precision"][0] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg"][0] == pytest.approx(dcg / idcg)


def test_idcg_uses_min_of_test_size_and_k():
    # 5 test items, k = 2, both slots hit: a perfect list, ndcg 1, recall 2/5.
    m = user_metrics(np.array([[True, True]]), np.array([5]), k=2)
    assert m["ndcg"][0] == pytest.approx(1.0)
    assert m["recall"][0] == pytest.approx(0.4)


def test_matches_naive_loop():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 50, 40, 10
    topk = np.stack([rng.permutation(n_items)[:20] for _ in range(n_users)])
    tests = [set(rng.choice(n_items, rng.integers(1, 8), replace=False)) for _ in range(n_users)]
    keys = np.sort(np.array([u * n_items + i for u, t in enumerate(tests) for i in t]))
    hits = hits_matrix(topk, np.arange(n_users), keys, n_items)
    got = mean_metrics(hits, np.array([len(t) for t in tests]), ks=(k,))
    rec, nd, pre = [], [], []
    for u in range(n_users):
        h = [1.0 if topk[u, r] in tests[u] else 0.0 for r in range(k)]
        rec.append(sum(h) / len(tests[u]))
        pre.append(sum(h) / k)
        dcg = sum(h[r] / math.log2(r + 2) for r in range(k))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(tests[u]), k)))
        nd.append(dcg / idcg)
    assert got["recall_at_10"] == pytest.approx(np.mean(rec))
    assert got["precision_at_10"] == pytest.approx(np.mean(pre))
    assert got["ndcg_at_10"] == pytest.approx(np.mean(nd))


def test_padding_never_hits_and_bad_input_raises():
    keys = np.array([0 * 5 + 0])
    hits = hits_matrix(np.array([[-1, 0]]), np.array([0]), keys, 5)
    assert hits.tolist() == [[False, True]]
    with pytest.raises(ValueError, match="k must be in 1..2"):
        user_metrics(hits, np.array([1]), k=3)
    with pytest.raises(ValueError, match="n_test <= 0"):
        user_metrics(hits, np.array([0]), k=1)


def test_metric_keys_are_the_contract():
    assert metric_keys() == ["recall_at_10", "ndcg_at_10", "precision_at_10",
                             "recall_at_20", "ndcg_at_20", "precision_at_20"]
