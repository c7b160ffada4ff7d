"""Real time: what the user and their circles did a minute ago shapes the next slate (the recent
view over the event log, read by a served version past its training watermark)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from guanxi.serving.events import SQLiteEventStore
from guanxi.serving.forget_list import ForgetList
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recent import RecentView
from guanxi.serving.recommender import Recommender

NOW = 1_800_000_000
_ids = itertools.count()


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _event(user: str, item: str, kind: str) -> dict:
    return {"user_id": user, "item_id": item, "type": kind, "event_id": f"e{next(_ids)}"}


@pytest.fixture
def store(tmp_path):
    s = SQLiteEventStore(tmp_path / "events.db")
    yield s
    s.close()


def _append(store, clock, events) -> None:
    """Store ``events`` as received at ``clock``'s time (the server's arrival time)."""
    import guanxi.serving.events as events_module

    real = events_module.time.time
    events_module.time.time = clock
    try:
        store.append(events)
    finally:
        events_module.time.time = real


# -- the view itself -----------------------------------------------------------------------------------

def test_the_view_reads_increments_keeps_the_window_and_the_caps(store):
    clock = Clock()
    view = RecentView(store, PolicyConfig(recent_max_per_user=3, recent_max_events=5), clock=clock)
    _append(store, clock, [_event("a", f"i{j}", "click") for j in range(4)] + [_event("b", "i0", "pay")])
    view.load()
    assert [e[1] for e in view.own("a")] == ["i1", "i2", "i3"]        # the newest 3 of a's 4
    assert view.size()["events"] == 4
    _append(store, clock, [_event("c", "x", "read"), _event("c", "y", "read")])
    assert view.refresh() == 2
    assert view.size()["events"] == 5 and [e[1] for e in view.own("a")] == ["i2", "i3"]   # the oldest went
    clock.t += 49 * 3600                                               # past the 48 h window
    _append(store, clock, [_event("d", "z", "like")])
    view.refresh()
    assert view.size() == {"events": 1, "users": 1, "hides": 0} and view.own("a") == []


def test_impressions_are_never_read_and_hides_outlive_the_window(store):
    clock = Clock()
    view = RecentView(store, PolicyConfig(), clock=clock)
    _append(store, clock, [_event("a", "i1", "impression"), _event("a", "i2", "hide")])
    view.load()
    assert view.own("a") == [] and view.hidden("a") == ["i2"]
    clock.t += 10 * 86400
    view.refresh()
    assert view.hidden("a") == ["i2"]                                  # 10 days: still fatigued
    assert view.hidden("a", now=NOW + 15 * 86400) == []               # past fatigue_days (14)
    fresh = RecentView(store, PolicyConfig(), clock=Clock(NOW + 10 * 86400))
    fresh.load(floor=10**9)                                            # a watermark past the hide
    assert fresh.hidden("a") == ["i2"]                                 # hides ignore the watermark


def test_the_floor_drops_what_the_served_version_holds_and_a_rollback_reloads(store):
    clock = Clock()
    view = RecentView(store, PolicyConfig(), clock=clock)
    _append(store, clock, [_event("a", f"i{j}", "click") for j in range(4)])
    view.load()
    seqs = [e[0] for e in view.own("a")]
    view.set_floor(seqs[1])                                            # a version trained up to i1
    assert [e[1] for e in view.own("a")] == ["i2", "i3"]
    view.set_floor(0)                                                  # rolled back to an older version
    assert [e[1] for e in view.own("a")] == ["i0", "i1", "i2", "i3"]


def test_forgotten_users_are_never_loaded_and_leave_the_view(store):
    clock = Clock()
    salt = b"0" * 16
    gone = ForgetList(salt, [])
    view = RecentView(store, PolicyConfig(), forgotten=lambda u: gone.contains(u), clock=clock)
    _append(store, clock, [_event("a", "i1", "click"), _event("b", "i1", "click"), _event("b", "i9", "hide")])
    view.load()
    from guanxi.serving.forget_list import hash_user

    gone = ForgetList(salt, [hash_user(salt, "b")])
    assert view.forget(gone) == 1 and view.own("b") == [] and view.hidden("b") == []
    _append(store, clock, [_event("b", "i2", "click")])               # a write that slipped past
    view.refresh()
    assert view.own("b") == [] and [e[1] for e in view.own("a")] == ["i1"]


# -- a served version reading it ----------------------------------------------------------------------

@pytest.fixture
def served(bundle, store):
    """A recommender over the hand-made bundle with a recent view on a fresh log."""
    clock = Clock()
    policy = PolicyConfig()
    rec = Recommender(bundle)
    view = RecentView(store, policy, clock=clock)
    view.load()
    rec.attach_recent(view, policy)
    return rec, view, clock, policy


def _slate(rec, user, policy, **kw):
    _, slate, cands, state = rec.explain(user, kw.pop("k", 20), policy, **kw)
    return {str(rec.item_ids[s.item_idx]): s for s in slate}, cands, state


def _user_with_kind_in_slate(rec, policy, kind):
    for user in rec.idmap.user_ids.astype(str)[:400]:
        slate, _, _ = _slate(rec, user, policy)
        hits = [i for i, s in slate.items() if rec.kinds[s.item_idx] == kind]
        if hits:
            return user, hits[0]
    raise AssertionError(f"no user with a {kind} in their slate")


def test_a_payment_leaves_the_merchant_out_of_the_next_slate(served, store):
    rec, view, clock, policy = served
    user, merchant = _user_with_kind_in_slate(rec, policy, "merchant")
    _append(store, clock, [_event(user, merchant, "pay")])
    view.refresh()
    slate, cands, _ = _slate(rec, user, policy)
    assert merchant not in slate and merchant not in set(rec.item_ids[cands.item_idx])
    again = policy.replace(reconsumable_kinds="merchant")           # a product that re-offers shops
    rec.attach_recent(view, again)
    assert merchant in _slate(rec, user, again)[0]


def test_following_an_account_makes_its_posts_self_sought_at_once(served, store):
    rec, view, clock, policy = served
    for user in rec.idmap.user_ids.astype(str)[:400]:
        slate, _, _ = _slate(rec, user, policy, kinds=["content"], k=40)
        owned = [(i, s) for i, s in slate.items() if rec.owner_idx[s.item_idx] >= 0 and s.reason == "similar_taste"]
        if owned:
            break
    post, _ = owned[0]
    account = str(rec.item_ids[rec.owner_idx[rec.item_index([post])[0]]])
    _append(store, clock, [_event(user, account, "follow")])
    view.refresh()
    slate, _, _ = _slate(rec, user, policy, kinds=["content"], k=40)
    assert slate[post].reason == "self_sought"
    assert account not in _slate(rec, user, policy, k=100)[0]           # followed: not offered again


def _inner_pair(rec, policy):
    """A user B, an inner-circle contact A strong enough to open the gate alone, and a merchant M
    that none of B's contacts engaged with, nor B."""
    b = rec.bundle
    strong = b.circles[(b.circles["circle"] == "inner") & (b.circles["strength"] >= policy.commercial_min_inner_support)]
    merchants = rec.kind_items["merchant"]
    for user, contact in zip(strong["user_id"].astype(str), strong["friend_id"].astype(str)):
        scored = rec.score(user)
        known = set(scored.c_items.tolist()) | set(scored.consumed.tolist())
        free = [m for m in merchants if m not in known]
        if free:
            return user, contact, str(rec.item_ids[free[0]])
    raise AssertionError("no inner tie strong enough")


def test_a_contact_s_payment_opens_a_trusted_path_a_stranger_s_never_does(served, store):
    rec, view, clock, policy = served
    b_user, a_contact, merchant = _inner_pair(rec, policy)
    shop = policy.replace(max_commercial_share=1.0)
    before, cands, _ = _slate(rec, b_user, shop, kinds=["merchant"], k=100)
    assert merchant not in before
    contacts = set(rec.idmap.user_ids[rec.contacts.of(rec.user_index(b_user))[0]].astype(str))
    stranger = next(u for u in rec.idmap.user_ids.astype(str) if u not in contacts and u != b_user)
    _append(store, clock, [_event(stranger, merchant, "pay")])
    view.refresh()
    assert merchant not in _slate(rec, b_user, shop, kinds=["merchant"], k=100)[0]   # strangers open nothing
    _append(store, clock, [_event(a_contact, merchant, "pay")])
    view.refresh()
    after, cands, _ = _slate(rec, b_user, shop, kinds=["merchant"], k=100)
    assert after[merchant].reason == "inner_circle" and after[merchant].contacts_engaged >= 1
    at = list(cands.item_idx).index(rec.item_index([merchant])[0])
    assert cands.inner_support[at] >= policy.commercial_min_inner_support


def test_hide_removes_the_item_at_once_and_fatigues_its_account(served, store):
    rec, view, clock, policy = served
    for user in rec.idmap.user_ids.astype(str)[:400]:
        slate, _, _ = _slate(rec, user, policy, kinds=["content"], k=60)
        owners = [rec.owner_idx[s.item_idx] for s in slate.values() if rec.owner_idx[s.item_idx] >= 0]
        shared = [o for o in set(owners) if owners.count(o) >= 2]
        if shared:
            break
    account = shared[0]
    posts = [i for i, s in slate.items() if rec.owner_idx[s.item_idx] == account]
    _append(store, clock, [_event(user, posts[0], "hide")])
    view.refresh()
    remove = policy.replace(hide_account="remove")
    rec.attach_recent(view, remove)
    now_slate, _, state = _slate(rec, user, remove, kinds=["content"], k=60)
    assert posts[0] not in now_slate and not any(rec.owner_idx[s.item_idx] == account for s in now_slate.values())
    demote = policy.replace(hide_account="demote", hide_demotion=0.5)
    rec.attach_recent(view, demote)
    demoted, cands, _ = _slate(rec, user, demote, kinds=["content"], k=60)
    assert posts[0] not in demoted
    for post in posts[1:]:
        if post in demoted:
            assert demoted[post].score == pytest.approx(slate[post].score - 0.5, abs=1e-5)
    clock.t += 15 * 86400                                              # past fatigue_days
    rec.attach_recent(view, remove)
    later, _, _ = _slate(rec, user, remove, kinds=["content"], k=60)
    assert any(rec.owner_idx[s.item_idx] == account for s in later.values())


def test_a_forgotten_contact_s_recent_engagement_counts_for_nobody(served, store):
    rec, view, clock, policy = served
    b_user, a_contact, merchant = _inner_pair(rec, policy)
    shop = policy.replace(max_commercial_share=1.0)
    _append(store, clock, [_event(a_contact, merchant, "pay")])
    view.refresh()
    assert merchant in _slate(rec, b_user, shop, kinds=["merchant"], k=100)[0]
    store.forget(a_contact)
    forget = store.forget_list()
    view.forget(forget)
    rec.forget(forget)
    assert merchant not in _slate(rec, b_user, shop, kinds=["merchant"], k=100)[0]


def test_no_double_counting_once_a_version_holds_the_events(served, store):
    rec, view, clock, policy = served
    b_user, a_contact, merchant = _inner_pair(rec, policy)
    _append(store, clock, [_event(a_contact, merchant, "pay")])
    view.refresh()
    at = rec.item_index([merchant])[0]
    assert at in rec.score(b_user).c_items
    view.set_floor(store.max_seq())                     # promoted: the new version trained on it
    assert at not in rec.score(b_user).c_items         # this (older) bundle does not hold it: gone
    assert np.all(np.isfinite(rec.score(b_user).scores[rec.score(b_user).c_items]))
