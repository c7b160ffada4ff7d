"""The intent-conditioned ranking judged as served: each held-out interaction ranked at its own
moment, with the intent read from everything before it (training/intent_events.py)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from guanxi.features.coded import CodedEvents
from guanxi.features.intent_filter import DAY_S, IntentFilter
from guanxi.training.intent_events import before_each, event_metrics, event_task


def _events(user, item, ts) -> CodedEvents:
    n = len(user)
    return CodedEvents(np.array(user), np.array(item), np.zeros(n, np.int8), np.array(ts, np.float64))


def test_the_task_keeps_each_pair_s_first_timed_interaction_whose_item_is_not_known():
    exclude = sp.csr_matrix(([1.0], ([0], [3])), shape=(2, 5))          # user 0 knows item 3
    ev = _events([0, 0, 0, 0, 1, 1, 0], [1, 1, 3, 2, 4, 0, 4], [50, 10, 5, np.nan, 7, 3, 20])
    task = event_task(ev, np.array([1, 0, 0, 0, 1, 0, 1], np.int8), exclude, np.ones(2, np.int64))
    assert task.user.tolist() == [0, 0, 1, 1]
    assert task.item.tolist() == [1, 4, 0, 4]          # item 1 first at 10 (its later repeat goes)
    assert task.ts.tolist() == [10, 20, 3, 7]
    assert task.observed.tolist() == [0, 1, 0, 1]      # the kept interaction's own intent


def test_the_intent_before_each_interaction_is_what_a_request_then_would_read():
    flt = IntentFilter(0.05, 0.7, 0.1)
    state, last_ts, propensity = np.array([0.3, 0.2]), np.array([0.0, np.nan]), np.array([0.3, 0.2])
    ev = _events([0, 1, 0, 0, 1], [1, 2, 3, 4, 0], np.array([1, 2, 2, 3, 4]) * DAY_S)
    observed = np.array([1, 0, 1, 0, 1], np.int8)
    task = event_task(ev, observed, sp.csr_matrix((2, 5)), np.ones(2, np.int64))
    p = before_each(flt, state, last_ts, propensity, task)
    for j in range(len(task)):
        u = task.user[j]
        earlier = (task.user == u) & (task.ts < task.ts[j])
        s, t = flt.follow(float(state[u]), float(last_ts[u]), float(propensity[u]), task.observed[earlier],
                          task.ts[earlier])
        expected = propensity[u] + (s - propensity[u]) * np.exp(-flt.rate * ((task.ts[j] - t) / DAY_S if t == t else 0.0))
        assert abs(p[j] - expected) < 1e-9
    assert state.tolist() == [0.3, 0.2] and last_ts[0] == 0.0    # the served state is left as it was


def _brute(scores, task, up_e, up_s, econ):
    hits = []
    for j in range(len(task)):
        s = scores[task.user[j]].copy() + np.where(econ, up_e[j], up_s[j])
        s[task.exclude[task.user[j]].indices] = -np.inf
        earlier = (task.user == task.user[j]) & (np.arange(len(task)) < j)
        s[task.item[earlier]] = -np.inf
        hits.append((s > s[task.item[j]]).sum())
    return np.array(hits)                               # the rank of each interaction's item


def test_every_ranking_equals_ranking_each_interaction_in_full():
    rng = np.random.default_rng(0)
    n_users, n_items, n = 30, 300, 400
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32) * 3
    econ = rng.random(n_items) < 0.3
    exclude = sp.random(n_users, n_items, density=0.05, random_state=1, format="csr")
    ev = _events(rng.integers(0, n_users, n), rng.integers(0, n_items, n), rng.uniform(0, 1e6, n))
    task = event_task(ev, rng.integers(0, 2, n).astype(np.int8), exclude, np.ones(n_users, np.int64))
    shifts = {"none": (np.zeros(len(task)), np.zeros(len(task))),
              "mixed": (rng.normal(0, 2, len(task)), rng.normal(0, 2, len(task)))}
    groups = rng.integers(-1, 2, len(task)).astype(np.int8)
    score = lambda u: torch.from_numpy(scores[u.numpy()])     # noqa: E731
    few = np.zeros(n_items, bool)
    few[rng.choice(n_items, 10, replace=False)] = True        # a half smaller than the top 20
    for econ_items in (econ, few):
        got = event_metrics(score, score, task, shifts, econ_items, groups, chunk=64)
        for name, (up_e, up_s) in shifts.items():
            rank = _brute(scores, task, up_e, up_s, econ_items)
            hit, gain = rank < 20, np.where(rank < 20, 1 / np.log2(rank + 2.0), 0.0)
            assert abs(got[name]["overall"]["ndcg_at_20"] - gain[groups >= 0].mean()) < 1e-12
            assert abs(got[name]["overall"]["recall_at_20"] - hit[groups >= 0].mean()) < 1e-12
            assert abs(got[name]["economic"]["recall_at_20"] - hit[groups == 1].mean()) < 1e-12
            assert got[name]["social"]["events"] == int((groups == 0).sum())
        assert got["none"]["overall"]["recall_at_20"] != got["mixed"]["overall"]["recall_at_20"]


def test_the_validation_grid_reads_a_seeded_sample_of_users_within_its_event_budget():
    from guanxi.training.intent_fit import _sample_users

    user = np.repeat(np.arange(100), 5)                       # 100 users, 5 interactions each
    users = np.arange(0, 100, 2)
    assert _sample_users(user, users, 1_000).tolist() == users.tolist()
    sample = _sample_users(user, users, 100)
    assert len(sample) == 20 and set(sample) <= set(users)   # 20 users x 5 = the budget
    assert sample.tolist() == _sample_users(user, users, 100).tolist()
