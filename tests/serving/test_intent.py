"""Intent served per request: asking for economic gives a more economic slate than asking for social,
the trust gate holds under every intent, a slate asked to be economic returns the eligible
trusted-path items up to k (the share cap off), the feed never shortens, and the inferred intent
follows an event acknowledged seconds ago."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guanxi.features.schema import ITEM_KINDS
from guanxi.serving.events import SQLiteEventStore
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recent import RecentView
from guanxi.serving.recommender import Recommender

_ids = itertools.count()


@pytest.fixture(scope="module")
def rec(bundle) -> Recommender:
    return Recommender(bundle)


@pytest.fixture(scope="module")
def users(rec) -> list[str]:
    counts = np.diff(rec.bundle.history.indptr)
    return [u for u, n in zip(rec.idmap.user_ids.astype(str), counts) if n > 0][:120]


def test_the_bundle_claims_intent_and_every_user_has_a_mix(rec):
    assert rec.intent.claims and rec.intent.filter is not None          # what training writes
    use = rec.intent_for("u1", "auto", now=2e9)
    assert 0.0 < use.q < 1.0 and use.source in ("history", "circle", "population")
    assert rec.intent_for("someone-new", "auto").source == "population"


def _economic_share(rec, slate) -> float:
    return float(np.mean([rec.commercial[s.item_idx] for s in slate])) if slate else 0.0


def test_asking_for_economic_gives_more_economic_items_than_social(rec, users):
    policy = PolicyConfig()
    econ, social = [], []
    for user in users:
        for asked, into in (("economic", econ), ("social", social)):
            _, slate = rec.recommend(user, 20, policy, intent=rec.intent_for(user, asked))
            into.append(_economic_share(rec, slate))
            for s in slate:                                    # the gate holds under every intent
                assert not s.commercial or s.reason in ("inner_circle", "self_sought")
    econ, social = np.array(econ), np.array(social)
    assert (econ >= social).all() and econ.mean() > social.mean() + 0.05


@pytest.mark.parametrize("asked", ["auto", "economic", "social", "any"])
def test_forty_refreshes_never_shorten_the_slate(rec, users, asked):
    policy = PolicyConfig()
    whole = policy.replace(candidate_min=rec.idmap.num_items)
    for user in users[:3]:
        shown: dict[str, int] = {}
        for _ in range(40):
            use = rec.intent_for(user, asked)
            _, slate = rec.recommend(user, 20, policy, impressions=dict(shown), intent=use)
            _, eligible = rec.recommend(user, 20, whole, impressions=dict(shown), intent=use)
            assert len(slate) == min(20, len(eligible))
            for s in slate:
                item = str(rec.item_ids[s.item_idx])
                shown[item] = shown.get(item, 0) + 1


def test_an_unknown_intent_is_refused(rec):
    with pytest.raises(ValueError, match="intent must be one of"):
        rec.intent_for("u1", "shopping")


def _eligible_commercial(rec, user, policy, kinds) -> list[int]:
    """Every commercial item the policy lets through for the user over the whole catalogue."""
    whole = policy.replace(candidate_min=rec.idmap.num_items, max_commercial_share=1.0)
    _, slate, cands, state = rec.explain(user, rec.idmap.num_items, whole, kinds=kinds)
    return [s.item_idx for s in slate if s.commercial]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_slate_asked_to_be_economic_returns_the_eligible_trusted_items_up_to_k(rec, users, data):
    user = data.draw(st.sampled_from(users))
    k = data.draw(st.integers(1, 40))
    how = data.draw(st.sampled_from(["intent", "kinds"]))
    kinds = ["merchant"] if how == "kinds" else data.draw(
        st.none() | st.lists(st.sampled_from(ITEM_KINDS), min_size=1, max_size=3, unique=True))
    policy = PolicyConfig(commercial_min_inner_support=data.draw(st.sampled_from([0.0, 0.5, 1.0])))
    use = rec.intent_for(user, "economic" if how == "intent" else "auto")
    _, slate = rec.recommend(user, k, policy, kinds=kinds, intent=use)
    eligible = _eligible_commercial(rec, user, policy, kinds)
    got = [s.item_idx for s in slate if s.commercial]
    assert len(got) == min(k, len(eligible)) and set(got) <= set(eligible)
    if how == "intent":                     # the economic items come first, then the best others
        flags = [s.commercial for s in slate]
        assert flags == sorted(flags, reverse=True)
        assert rec.intent.filled(use, [s.item_idx for s in slate]) == sum(1 for f in flags if not f)


def _eight_payments_seconds_ago(rec: Recommender, folder) -> tuple:
    """User u7's intent for ``auto`` before and after eight payments at merchants acknowledged
    just now (through a real store and recent view)."""
    store = SQLiteEventStore(folder / "events.db")
    policy = PolicyConfig()
    view = RecentView(store, policy)
    view.load()
    rec.attach_recent(view, policy)
    try:
        before = rec.intent_for("u7", "auto")
        merchants = [str(rec.item_ids[i]) for i in rec.kind_items["merchant"][:8]]
        store.append([{"user_id": "u7", "item_id": m, "type": "pay", "event_id": f"i{next(_ids)}"} for m in merchants])
        view.refresh()
        return before, rec.intent_for("u7", "auto")
    finally:
        rec.attach_recent(None, policy)


def test_an_event_acknowledged_seconds_ago_moves_the_inferred_intent(rec, tmp_path):
    before, after = _eight_payments_seconds_ago(rec, tmp_path)
    assert after.source == "recent" and after.q > before.q + 0.2
    assert after.shift[0] > 0 > after.shift[1]             # economic items lifted, social lowered


def test_a_bundle_from_before_the_filter_still_reads_intent_now(tiny_world_dir, tmp_path):
    from guanxi.bundle import load_bundle
    from tests.handmade import handmade_bundle

    old = Recommender(load_bundle(handmade_bundle(tiny_world_dir, tmp_path / "old", 16, intent="logistic")))
    assert old.intent.claims and old.intent.filter is None
    before, after = _eight_payments_seconds_ago(old, tmp_path)
    assert after.source == "recent" and after.q > before.q + 0.2


def test_long_after_a_person_s_last_event_auto_ranks_as_their_usual(rec, users):
    for user in users[:20]:
        use = rec.intent_for(user, "auto", now=1e12)            # decades later: only the propensity is left
        assert use.shift == pytest.approx((0.0, 0.0), abs=1e-9)
