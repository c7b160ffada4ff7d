"""Exposure-policy invariants as property tests, plus the config file's contract."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guanxi.serving.policy import Candidates, PolicyConfig, UserState, apply_policy, load_policy


@st.composite
def requests(draw):
    n = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    item_idx = rng.choice(200, size=n, replace=False)
    contacts = rng.integers(0, 4, n)
    cands = Candidates(
        item_idx=item_idx, score=rng.normal(0, 2, n), commercial=rng.random(n) < draw(st.floats(0, 1)),
        owner_idx=np.where(rng.random(n) < 0.5, rng.integers(0, 200, n), -1),
        inner_support=np.where(rng.random(n) < 0.4, rng.random(n) * 2, 0.0),
        outer_strength=np.where(rng.random(n) < 0.5, rng.random(n), 0.0),
        contacts_engaged=contacts, self_sought=rng.random(n) < 0.2,
        impressions=rng.integers(0, 5, n))
    user = UserState(consumed=rng.choice(200, size=draw(st.integers(0, 20)), replace=False),
                     muted=rng.choice(200, size=draw(st.integers(0, 10)), replace=False),
                     commercial_opt_out=draw(st.booleans()))
    config = PolicyConfig(
        enabled=draw(st.booleans()), commercial_min_inner_support=draw(st.floats(0, 2)),
        allow_self_sought=draw(st.booleans()), outward_decay=draw(st.floats(0, 3)),
        max_commercial_share=draw(st.floats(0, 1)), frequency_cap=draw(st.integers(0, 4)))
    return cands, user, config, draw(st.integers(1, 30)), draw(st.sampled_from([None, "circle", "popular"]))


@settings(max_examples=400, deadline=None)
@given(requests())
def test_policy_invariants(req):
    cands, user, config, k, fallback = req
    slate = apply_policy(cands, user, config, k, fallback)
    pos = {int(i): j for j, i in enumerate(cands.item_idx)}
    chosen = [pos[s.item_idx] for s in slate]
    assert len(slate) <= k and len(set(chosen)) == len(chosen)
    # consumed items never come back; settings always apply, policy on or off
    assert not set(cands.item_idx[chosen]) & set(user.consumed.tolist())
    assert not set(cands.item_idx[chosen]) & set(user.muted.tolist())
    assert not set(cands.owner_idx[chosen]) & set(user.muted.tolist())
    if user.commercial_opt_out:
        assert not any(s.commercial for s in slate)
    # explanations carry the candidates' contact counts (contacts only) and a known reason
    for s, j in zip(slate, chosen):
        assert s.contacts_engaged == cands.contacts_engaged[j]
        assert s.reason in ("inner_circle", "self_sought", "similar_taste", "popular")
        if s.reason == "inner_circle":
            assert cands.inner_support[j] > 0
        if s.reason == "similar_taste":
            assert fallback is None
    scores = [s.score for s in slate]
    assert scores == sorted(scores, reverse=True)
    if not config.enabled:
        return
    n_comm = sum(s.commercial for s in slate)
    assert n_comm <= math.floor(config.max_commercial_share * len(slate) + 1e-9)
    for s, j in zip(slate, chosen):
        if s.commercial:  # trust gating
            assert (cands.inner_support[j] >= config.commercial_min_inner_support
                    or (config.allow_self_sought and cands.self_sought[j]))
        if config.frequency_cap:
            assert cands.impressions[j] < config.frequency_cap


def _cands(n, **over):
    base = dict(item_idx=np.arange(n), score=np.linspace(1, 0, n), commercial=np.zeros(n, bool),
                owner_idx=np.full(n, -1), inner_support=np.zeros(n), outer_strength=np.zeros(n),
                contacts_engaged=np.zeros(n, np.int64), self_sought=np.zeros(n, bool),
                impressions=np.zeros(n, np.int64))
    base.update(over)
    return Candidates(**base)


NOBODY = UserState(consumed=np.zeros(0, np.int64), muted=np.zeros(0, np.int64))


def test_outward_decay_demotes_by_tie_strength():
    # three equal scores: inner-supported, weak-tie (0.8) supported, stranger-only
    c = _cands(3, score=np.ones(3), inner_support=np.array([0.6, 0, 0]), outer_strength=np.array([0, 0.8, 0]),
               contacts_engaged=np.array([1, 1, 0]))
    slate = apply_policy(c, NOBODY, PolicyConfig(outward_decay=1.0), 3, None)
    assert [s.item_idx for s in slate] == [0, 1, 2]
    assert [s.score for s in slate] == pytest.approx([1.0, 0.8, 0.0])
    assert [s.reason for s in slate] == ["inner_circle", "similar_taste", "similar_taste"]


def test_commercial_item_needs_a_trusted_path():
    c = _cands(4, commercial=np.array([True, True, True, False]), inner_support=np.array([0.7, 0.2, 0, 0]),
               self_sought=np.array([False, False, True, False]))
    slate = apply_policy(c, NOBODY, PolicyConfig(max_commercial_share=1.0), 4, None)
    assert [s.item_idx for s in slate] == [0, 2, 3]          # 0.2 inner support is below 0.5
    assert [s.reason for s in slate][:2] == ["inner_circle", "self_sought"]


def test_commercial_share_of_a_short_slate():
    c = _cands(3, commercial=np.array([True, True, False]), inner_support=np.ones(3))
    slate = apply_policy(c, NOBODY, PolicyConfig(max_commercial_share=0.5), 20, None)
    assert sum(s.commercial for s in slate) == 1 and len(slate) == 2


def test_load_policy_rejects_unknown_keys_and_bad_values(tmp_path):
    assert load_policy() == PolicyConfig()
    p = tmp_path / "p.yaml"
    p.write_text("max_commercial_share: 0.1\n")
    assert load_policy(p).max_commercial_share == 0.1
    p.write_text("max_comercial_share: 0.1\n")
    with pytest.raises(ValueError, match="unknown policy key 'max_comercial_share'.*valid keys"):
        load_policy(p)
    p.write_text("max_commercial_share: 1.5\n")
    with pytest.raises(ValueError, match="max_commercial_share must be in"):
        load_policy(p)
    p.write_text("enabled: maybe\n")
    with pytest.raises(ValueError, match="enabled must be true or false"):
        load_policy(p)
    with pytest.raises(ValueError, match="not found"):
        load_policy(tmp_path / "missing.yaml")
