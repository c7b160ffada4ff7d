"""Every policy invariant on every serving path: full scoring, the candidate table with contact
facts, and the fallbacks for unknown and cold users (hypothesis), each checked against the bundle's
own circles and histories rather than the recommender's arithmetic; the frequency cap never empties
a feed while eligible items remain; commerce is inherited through ownership; only deliberate
engagement makes an item self-sought."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guanxi.features.ids import IdMap
from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS
from guanxi.serving.catalogue import Catalogue
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recommender import Recommender
from guanxi.serving.retrieval import RetrievalConfig
from guanxi.serving.scores import Scored

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paths(bundle, tmp_path_factory) -> dict[str, Recommender]:
    table = RetrievalConfig(min_items=0, table_max_scores=10**12, table_min_items=500, table_depth=120)
    rec = Recommender(bundle, table, tmp_path_factory.mktemp("paths"))
    assert rec.tables and rec.facts is not None
    return {"full": Recommender(bundle), "table": rec}


@pytest.fixture(scope="module")
def users(bundle) -> dict[str, list[str]]:
    ids = bundle.idmap.user_ids.astype(str)
    counts = np.diff(bundle.history.indptr)
    with_contacts = set(bundle.circles["user_id"].astype(str))
    cold = [u for u, n in zip(ids, counts) if n == 0 and u in with_contacts]
    assert cold
    return {"known": [u for u, n in zip(ids, counts) if n > 0][:400], "cold": cold, "unknown": ["a-new-user"]}


def _truth(rec: Recommender, user: str) -> tuple[dict[int, tuple[float, bool]], set[int]]:
    """The user's contacts (user_idx -> (strength, inner)) from the circles table, and the items
    they deliberately engaged with, by event type, from the bundle's history."""
    b = rec.bundle
    rows = b.circles[b.circles["user_id"].astype(str) == user]
    contacts = {int(rec.idmap.user_index([f])[0]): (float(s), c == "inner")
                for f, s, c in zip(rows["friend_id"].astype(str), rows["strength"], rows["circle"])}
    u = rec.idmap.user_index([user])[0]
    sought: set[int] = set()
    if u >= 0:
        lo, hi = b.history.indptr[u], b.history.indptr[u + 1]
        mask = PolicyConfig().sought_mask
        sought = {int(i) for i, t in zip(b.history.indices[lo:hi], b.history_types[lo:hi]) if t & mask}
    return contacts, sought


def _engaged(rec: Recommender, v: int, item: int, recent: dict | None = None) -> bool:
    h = rec.bundle.history
    return item in set(h.indices[h.indptr[v]:h.indptr[v + 1]].tolist()) or (
        recent is not None and item in recent["contact_items"].get(v, set()))


def _check(rec, user, k, kinds, muted, opt_out, shown, policy, fallback, slate, recent: dict | None = None) -> None:
    """Every invariant of ``slate``, from the bundle's own tables (and, with ``recent``, from the
    recent events drawn: ``contact_items``, ``own``, ``sought``, ``hidden``, ``removed``)."""
    contacts, sought = _truth(rec, user)
    u = rec.idmap.user_index([user])[0]
    h = rec.bundle.history
    consumed = set(h.indices[h.indptr[u]:h.indptr[u + 1]].tolist()) if u >= 0 else set()
    if recent is not None:
        consumed |= recent["own"]
        sought |= recent["sought"]
    muted_idx = set(rec.item_index(muted).tolist())
    ids = [s.item_idx for s in slate]
    assert len(slate) <= k and len(set(ids)) == len(ids)
    for s in slate:
        i = s.item_idx
        assert kinds is None or rec.kinds[i] in kinds
        assert i not in consumed and i not in muted_idx and rec.owner_idx[i] not in muted_idx
        if recent is not None:
            assert i not in recent["hidden"] and i not in recent["removed"] and rec.owner_idx[i] not in recent["removed"]
        assert s.commercial == rec.commercial[i]
        assert not (opt_out and s.commercial)
        engaged = [v for v in contacts if _engaged(rec, v, i, recent)]
        assert s.contacts_engaged == len(engaged)               # the user's own contacts, nobody else
        inner_support = sum(contacts[v][0] for v in engaged if contacts[v][1])
        if s.reason == "inner_circle":
            assert inner_support > 0
        if policy.enabled:
            assert shown.get(str(rec.item_ids[i]), 0) < policy.frequency_cap or not policy.frequency_cap
            if s.commercial:
                owner = rec.owner_idx[i]
                accounts = sought | {int(rec.owner_idx[j]) for j in sought if rec.owner_idx[j] >= 0}
                self_sought = i in accounts or owner in accounts or (   # the item, its account, a sibling
                    rec.catalogue.category[i] >= 0 and rec.catalogue.category[i] in
                    {rec.catalogue.category[j] for j in sought})
                assert inner_support >= policy.commercial_min_inner_support - 1e-9 or (
                    policy.allow_self_sought and self_sought), f"commercial {i} without a trusted path"
    if policy.enabled and list(dict.fromkeys(kinds or [])) != ["merchant"]:    # a slate asked to be commercial
        assert sum(s.commercial for s in slate) <= math.floor(policy.max_commercial_share * len(slate) + 1e-9)
    if user in ("a-new-user",):
        assert fallback == "popular"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_invariants_hold_on_every_path(paths, users, bundle, data):
    path = data.draw(st.sampled_from(sorted(paths)))
    rec = paths[path]
    group = data.draw(st.sampled_from(["known", "known", "cold", "unknown"]))
    user = data.draw(st.sampled_from(users[group]))
    k = data.draw(st.integers(1, 60))
    kinds = data.draw(st.none() | st.lists(st.sampled_from(ITEM_KINDS), min_size=1, max_size=3, unique=True))
    item_ids = list(rec.item_ids)
    muted = data.draw(st.lists(st.sampled_from(item_ids[:60]), max_size=4))
    shown = data.draw(st.dictionaries(st.sampled_from(item_ids), st.integers(0, 5), max_size=40))
    policy = PolicyConfig(enabled=data.draw(st.booleans()), max_commercial_share=data.draw(st.sampled_from([0.0, 0.3, 1.0])),
                          frequency_cap=data.draw(st.integers(0, 3)),
                          commercial_min_inner_support=data.draw(st.sampled_from([0.0, 0.5, 2.0])))
    opt_out = data.draw(st.booleans())
    fallback, slate = rec.recommend(user, k, policy, kinds=kinds, muted_ids=muted, commercial_opt_out=opt_out,
                                    impressions=shown)
    _check(rec, user, k, kinds, muted, opt_out, shown, policy, fallback, slate)
    # the served slate is as long as the same policy over the whole catalogue allows
    whole = policy.replace(candidate_min=rec.idmap.num_items)
    _, everything = rec.recommend(user, k, whole, kinds=kinds, muted_ids=muted, commercial_opt_out=opt_out,
                                  impressions=shown)
    assert len(slate) == len(everything)


@pytest.mark.parametrize("path", ["full", "table"])
@pytest.mark.parametrize("kinds, k, refreshes", [(None, 20, 30), (["official_account"], 4, 12), (["content"], 50, 12)])
def test_the_frequency_cap_never_empties_a_feed(paths, users, path, kinds, k, refreshes):
    rec = paths[path]
    policy = PolicyConfig()
    whole = policy.replace(candidate_min=rec.idmap.num_items)
    for user in (users["known"][3], users["cold"][0], "a-new-user"):
        shown: dict[str, int] = {}
        for _ in range(refreshes):
            _, slate = rec.recommend(user, k, policy, kinds=kinds, impressions=dict(shown))
            _, eligible = rec.recommend(user, k, whole, kinds=kinds, impressions=dict(shown))
            assert len(slate) == min(k, len(eligible))
            for s in slate:
                item = str(rec.item_ids[s.item_idx])
                assert shown.get(item, 0) < policy.frequency_cap
                shown[item] = shown.get(item, 0) + 1
    if kinds == ["official_account"]:      # a small kind runs dry: then, and only then, the feed empties
        assert len(slate) == len(eligible) < k


class ListLog:
    """An event log of rows ``(seq, user_id, item_id, type, received_ts)`` for a recent view."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def recent_events(self, after_seq, since_ts, limit, types=None):
        return [r for r in self.rows if r[0] > after_seq and r[4] >= since_ts and r[3] != "impression"
                and (types is None or r[3] in types)][:limit]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_invariants_hold_with_a_random_recent_view(paths, users, bundle, data):
    from guanxi.serving.recent import RecentView

    now = 1_800_000_000
    rec = paths[data.draw(st.sampled_from(sorted(paths)))]
    user = data.draw(st.sampled_from(users[data.draw(st.sampled_from(["known", "known", "cold", "unknown"]))]))
    contacts, _ = _truth(rec, user)
    ids = rec.idmap.user_ids.astype(str)
    actors = [user] + [ids[v] for v in sorted(contacts)][:8] + data.draw(st.lists(st.sampled_from(list(ids[:50])),
                                                                                    max_size=3))
    merchants = [str(rec.item_ids[i]) for i in rec.kind_items["merchant"]]
    items = st.sampled_from(merchants) | st.sampled_from(list(rec.item_ids.astype(str)))
    kinds_of_event = st.sampled_from([t for t in ITEM_EVENT_TYPES if t != "impression"])
    drawn = data.draw(st.lists(st.tuples(st.sampled_from(actors), items, kinds_of_event,
                                         st.integers(0, 47 * 3600)), max_size=40))
    rows = [(n + 1, a, i, t, now - age) for n, (a, i, t, age) in enumerate(drawn)]
    policy = PolicyConfig(enabled=data.draw(st.booleans()), max_commercial_share=data.draw(st.sampled_from([0.3, 1.0])),
                          frequency_cap=data.draw(st.integers(0, 3)),
                          hide_account=data.draw(st.sampled_from(["remove", "demote", "off"])),
                          reconsumable_kinds=data.draw(st.sampled_from(["", "merchant", "content,official_account"])))
    view = RecentView(ListLog(rows), policy, clock=lambda: now)
    view.load()
    rec.attach_recent(view, policy)
    try:
        k = data.draw(st.integers(1, 60))
        kinds = data.draw(st.none() | st.lists(st.sampled_from(ITEM_KINDS), min_size=1, max_size=3, unique=True))
        fallback, slate = rec.recommend(user, k, policy, kinds=kinds)
        # what the drawn events say, recomputed here from the rows
        at = {str(i): j for j, i in enumerate(rec.item_ids)}
        own = [(at[i], t) for _, a, i, t, _ in rows if a == user and t != "hide" and i in at]
        again = set(policy.reconsumable_kind_names)
        hidden = {at[i] for _, a, i, t, _ in rows if a == user and t == "hide" and i in at}
        accounts = {int(rec.owner_idx[i]) if rec.owner_idx[i] >= 0 else i for i in hidden}
        contact_items: dict[int, set[int]] = {}
        for _, a, i, t, _ in rows:
            v = rec.idmap.user_index([a])[0]
            if v in contacts and t != "hide" and i in at:
                contact_items.setdefault(int(v), set()).add(at[i])
        recent = {"own": {i for i, _ in own if rec.kinds[i] not in again},
                  "sought": {i for i, t in own if t in policy.sought_type_names},
                  "hidden": hidden, "removed": accounts if policy.hide_account == "remove" else set(),
                  "contact_items": contact_items}
        _check(rec, user, k, kinds, [], False, {}, policy, fallback, slate, recent)
        whole = policy.replace(candidate_min=rec.idmap.num_items)
        assert len(slate) == len(rec.recommend(user, k, whole, kinds=kinds)[1])
    finally:
        rec.attach_recent(None, policy)


def test_repeated_kinds_count_once(paths, users):
    rec = paths["full"]
    user = users["known"][0]
    _, once = rec.recommend(user, 30, PolicyConfig(), kinds=["content"])
    _, twice = rec.recommend(user, 30, PolicyConfig(), kinds=["content", "content"])
    assert [s.item_idx for s in once] == [s.item_idx for s in twice]


def _catalogue() -> tuple[Catalogue, dict[str, int]]:
    """A sponsored account ``A`` with posts ``c1``, ``c2``; a plain account ``B`` with ``c3``; two
    merchants of category ``food`` and one of ``toys``."""
    items = pd.DataFrame({
        "item_id": ["A", "B", "c1", "c2", "c3", "m1", "m2", "m3"],
        "kind": ["official_account"] * 2 + ["content"] * 3 + ["merchant"] * 3,
        "commercial": [True, False, False, False, False, True, True, True],
        "owner_id": [None, None, "A", "A", "B", None, None, None],
        "category": [None] * 5 + ["food", "food", "toys"]})
    idmap = IdMap(np.array(["u"]), items["item_id"].to_numpy())
    return Catalogue(items, idmap), {v: i for i, v in enumerate(items["item_id"])}


def _scored(consumed: list[int], types: list[str]) -> Scored:
    empty = np.zeros(0, np.int64)
    bits = np.array([1 << ITEM_EVENT_TYPES.index(t) for t in types], np.int64)
    return Scored(np.zeros(8, np.float32), None, np.array(consumed, np.int64), empty, empty, empty, empty.astype(bool),
                  empty, empty, empty, consumed_types=bits)


def test_content_of_a_sponsored_account_is_commercial():
    cat, at = _catalogue()
    assert cat.commercial[[at["c1"], at["c2"]]].all() and not cat.commercial[at["c3"]]


@pytest.mark.parametrize("consumed, types, sought", [
    (["c1"], ["view"], []),                       # shown or viewed a post: not deliberate
    (["c1"], ["read"], []),
    (["c1"], ["impression"], []),
    (["A"], ["follow"], ["A", "c1", "c2"]),       # followed the account: it and its posts
    (["c1"], ["pay"], ["A", "c1", "c2"]),          # paid for a post: the post, its owner, its siblings
    (["m1"], ["pay"], ["m1", "m2"]),              # paid at a merchant: its category
    (["m1"], ["click"], []),
])
def test_only_deliberate_engagement_is_self_sought(consumed, types, sought):
    cat, at = _catalogue()
    policy = PolicyConfig()
    got = cat.self_sought(_scored([at[c] for c in consumed], types), np.arange(8), policy.sought_mask)
    assert sorted(np.array(list(at))[got].tolist()) == sorted(sought)
