import numpy as np
import scipy.sparse as sp
import torch

from guanxi.training.evaluate import RankingTask, evaluate_ranking, rank_top_k, sample_users


def _task(train, test, n_users, n_items, kinds=None):
    tu = np.array([u for u, _ in train], dtype=np.int64)
    ti = np.array([i for _, i in train], dtype=np.int64)
    ex = sp.csr_matrix((np.ones(len(tu)), (tu, ti)), shape=(n_users, n_items))
    return RankingTask(n_items, ex, np.diff(ex.indptr),
                       np.array([u for u, _ in test]), np.array([i for _, i in test]),
                       np.array(kinds or ["content"] * n_items))


def test_training_items_are_never_ranked():
    scores = torch.arange(10, dtype=torch.float32).flip(0)[None, :]   # item 0 best
    task = _task([(0, 0), (0, 1)], [(0, 5)], 1, 10)
    top = rank_top_k(lambda u: scores.expand(len(u), -1), np.array([0]), task.exclude, 3)
    assert top.tolist() == [[2, 3, 4]]


def test_every_test_user_counts_and_cold_users_use_the_fallback():
    # user 0 knows item 0 and its test item 1 ranks first; user 1 is cold (no training items).
    task = _task([(0, 0)], [(0, 1), (1, 2), (1, 9)], 2, 10)
    score = lambda u: torch.tensor([[0, 5, 1, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.float32).expand(len(u), -1)
    fallback = lambda u: torch.tensor([[0, 0, 3, 0, 0, 0, 0, 0, 0, 2]], dtype=torch.float32).expand(len(u), -1)
    m = evaluate_ranking(score, task, fallback, ks=(1, 2))
    assert m["users"] == 2
    assert m["recall_at_2"] == 1.0          # user 0: 1/1, user 1: {2, 9} both found by fallback
    assert m["breakdowns"]["cold_start"]["users"] == 1
    without = evaluate_ranking(score, task, None, ks=(1, 2))
    assert without["recall_at_2"] < 1.0


def test_unseen_test_item_still_counts_in_test_size():
    # item 3 has no training interaction by anyone: still in |test|.
    task = _task([(0, 0)], [(0, 1), (0, 3)], 1, 4)
    score = lambda u: torch.tensor([[0.0, 1.0, 0.5, -1.0]]).expand(len(u), -1)
    m = evaluate_ranking(score, task, ks=(1,))
    assert m["recall_at_1"] == 0.5


def test_chunked_ranking_matches_dense_ranking():
    rng = np.random.default_rng(1)
    n_users, n_items = 300, 2000
    emb_u = torch.from_numpy(rng.normal(size=(n_users, 8)).astype(np.float32))
    emb_i = torch.from_numpy(rng.normal(size=(n_items, 8)).astype(np.float32))
    train = [(u, i) for u in range(n_users) for i in rng.choice(n_items, 5, replace=False)]
    task = _task(train, [(0, 1)], n_users, n_items)
    users = np.arange(n_users)
    top = rank_top_k(lambda u: emb_u[u] @ emb_i.T, users, task.exclude, 20)
    dense = (emb_u @ emb_i.T).numpy()
    dense[task.exclude.toarray() > 0] = -np.inf
    expect = np.argsort(-dense, axis=1, kind="stable")[:, :20]
    assert (top == expect).mean() > 0.999


def test_breakdowns_by_kind_rank_within_the_kind():
    kinds = ["merchant", "content", "content", "merchant"]
    task = _task([(0, 0)], [(0, 3), (0, 2)], 1, 4, kinds)
    score = lambda u: torch.tensor([[0.0, 3.0, 2.0, 1.0]]).expand(len(u), -1)
    m = evaluate_ranking(score, task, ks=(1,))
    assert m["breakdowns"]["kind"]["merchant"]["recall_at_1"] == 1.0   # only merchant left: 3
    assert m["breakdowns"]["kind"]["content"]["recall_at_1"] == 0.0    # 1 outranks 2
    assert m["breakdowns"]["sparsity"]["<10"]["users"] == 1


def test_a_user_sample_keeps_whole_users_and_is_the_task_itself_when_small_enough():
    test = [(u, i) for u in range(40) for i in range(u % 3 + 1)]
    task = RankingTask(5, sp.csr_matrix((40, 5)), np.ones(40, dtype=np.int64), np.array([u for u, _ in test]),
                       np.array([i for _, i in test]), np.array(["content"] * 5),
                       unranked=np.arange(40) % 2)
    assert sample_users(task, 0) is task and sample_users(task, 40) is task
    small = sample_users(task, 10, seed=3)
    kept = np.unique(small.test_user)
    assert len(kept) == 10
    for u in kept:      # every pair and unranked count of a kept user stays; the others' go
        assert (small.test_user == u).sum() == u % 3 + 1
    assert set(np.flatnonzero(small.unranked)) <= set(kept.tolist())
    assert (small.unranked[kept] == task.unranked[kept]).all()
    assert np.array_equal(sample_users(task, 10, seed=3).test_user, small.test_user)   # seeded
    score = lambda u: torch.zeros(len(u), 5)
    assert evaluate_ranking(score, small, ks=(1,))["users"] == 10
