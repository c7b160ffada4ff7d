"""A synthetic WeChat-like world with a known right answer, generated vectorised and seeded.

What it plants (all written to ``DIR/truth/`` so tests can check recovery):
- users in three overlapping kinds of group (family, friends, colleagues) plus a few random
  contacts; every tie has a true strength in [0, 1] drawn by group kind (family strongest);
- latent interests: a user's topic mix blends the topics of their groups with their own taste;
- pairwise events (messages, red packets, Moments likes and comments) whose rates grow with
  the true strength, with stronger ties more reciprocal;
- official accounts that publish content, merchants (commercial) in categories, some sponsored
  (commercial) official accounts;
- item events in rounds: each event comes from the user's own interests or, with probability
  ``social_influence``, copies an item that a contact engaged with earlier, the contact drawn
  with weight ``strength ** influence_sharpness`` (so strong ties drive it, weak ties barely);
- a temporal split by round: train, valid, test; a share of users join only in the test round
  (cold-start users who already have contacts);
- from ``version`` 2, intent (:mod:`guanxi.features.world_intent`): each user's long-term economic
  propensity (correlated within families and friends) and intent episodes in time; each event's
  true intent (``truth/events.parquet``, column ``intent``) picks the kind of item it seeks.

The defaults below are frozen: models are tuned on worlds made with them; change them only with
a new ``version``. Version 1 (the default) generates exactly what it always has; the intent
parameters are read only by version 2.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS, PAIR_EVENT_TYPES, Dataset
from guanxi.features.world_events import make_item_events
from guanxi.features.world_intent import plan_intent

logger = logging.getLogger(__name__)

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC: the world's first second
DAY = 86_400
GROUPS = ("family", "friends", "colleagues", "random")
ITEM_EVENT_BY_KIND = {
    "content": (("read", "like", "share", "comment"), (0.7, 0.15, 0.1, 0.05)),
    "official_account": (("follow",), (1.0,)),
    "merchant": (("click", "pay"), (0.6, 0.4)),
}
PAIR_RATES = {  # expected events over the whole world per tie, as a function of strength s
    "message": (6.0, 2.0), "red_packet": (0.8, 3.0), "moment_like": (3.0, 1.0),
    "moment_comment": (1.5, 2.0),
}


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of a synthetic world; every default is documented in README.md."""

    users: int = 10_000
    seed: int = 0
    version: int = 1
    topics: int = 16
    group_sizes: tuple[int, int, int] = (5, 12, 25)         # family, friends, colleagues
    ties_per_user: tuple[int, int, int, int] = (2, 3, 3, 1)  # proposals per user and group kind
    strength_beta: tuple[tuple[float, float], ...] = ((6, 2), (4, 3), (2, 5), (1, 9))
    official_accounts_per_1k: float = 5.0
    merchants_per_1k: float = 20.0
    content_per_user: float = 0.8
    merchant_categories: int = 20
    sponsored_share: float = 0.1
    kind_mix: tuple[float, float, float] = (0.1, 0.2, 0.7)   # official_account, merchant, content
    events_per_user: float = 30.0
    rounds: int = 6
    days: int = 90
    social_influence: float = 0.4
    influence_sharpness: float = 3.0
    late_joiner_share: float = 0.05
    # version 2: intent truth (features/world_intent.py)
    intent_episodes: bool = True
    econ_propensity_mean: float = 0.3
    econ_propensity_spread: float = 1.0
    econ_family_weight: float = 0.55
    econ_friends_weight: float = 0.35
    episode_days: float = 21.0
    economic_kind_mix: tuple[float, float, float] = (0.1, 0.7, 0.2)   # official_account, merchant, content
    social_kind_mix: tuple[float, float, float] = (0.1, 0.02, 0.88)
    intent_copy_fit: float = 0.8

    def __post_init__(self) -> None:
        if self.users < 50:
            raise ValueError(f"users must be at least 50, got {self.users}")
        if self.rounds < 3:
            raise ValueError(f"rounds must be at least 3 (train, valid, test), got {self.rounds}")
        if self.version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, got {self.version}")
        if not 0.0 < self.econ_propensity_mean < 1.0:
            raise ValueError(f"econ_propensity_mean must be in (0, 1), got {self.econ_propensity_mean}")
        if self.episode_days <= 0:
            raise ValueError(f"episode_days must be > 0, got {self.episode_days}")


@dataclass(frozen=True)
class WorldCodes:
    """A generated world as integer codes: no Python string per row, so a million users fit.

    Users are ``0..n-1`` (id ``u<k>``); items are official accounts, then merchants, then content
    (ids ``oa<k>``, ``m<k>``, ``c<k>``). Event types index :data:`ITEM_EVENT_TYPES`, pair-event
    types :data:`PAIR_EVENT_TYPES`, kinds :data:`ITEM_KINDS`, groups :data:`GROUPS`.

    Args:
        item_counts: (official accounts, merchants, content).
        item_kind, commercial, owner, category, item_topic, item_popularity: ``[I]`` per item
            (``owner``/``category`` -1 when none).
        join_round, activity: ``[U]``; interests: ``[U, topics]``.
        tie_u, tie_v, tie_strength, tie_group: ``[T]`` undirected ties with ``u < v``.
        pair_user, pair_friend, pair_type, pair_ts, pair_value: ``[P]`` pair events, sorted by
            time then user id.
        event_user, event_item, event_type, event_ts, event_value, event_round, event_cause,
            event_via: ``[E]`` item events sorted by user then time (``cause`` 1 = social,
            ``via`` the contact copied or -1).
        event_intent: ``[E]`` each event's true intent (0 social, 1 economic), version 2 only.
        econ_propensity: ``[U]`` each user's long-term economic propensity, version 2 only.
        episode_start, episode_intent: ``[U, K]`` each user's intent episodes (start day, intent),
            version 2 with episodes only.
    """

    config: WorldConfig
    item_counts: tuple[int, int, int]
    item_kind: np.ndarray
    commercial: np.ndarray
    owner: np.ndarray
    category: np.ndarray
    item_topic: np.ndarray
    item_popularity: np.ndarray
    join_round: np.ndarray
    activity: np.ndarray
    interests: np.ndarray
    tie_u: np.ndarray
    tie_v: np.ndarray
    tie_strength: np.ndarray
    tie_group: np.ndarray
    pair_user: np.ndarray
    pair_friend: np.ndarray
    pair_type: np.ndarray
    pair_ts: np.ndarray
    pair_value: np.ndarray
    event_user: np.ndarray
    event_item: np.ndarray
    event_type: np.ndarray
    event_ts: np.ndarray
    event_value: np.ndarray
    event_round: np.ndarray
    event_cause: np.ndarray
    event_via: np.ndarray
    event_intent: np.ndarray | None = None
    econ_propensity: np.ndarray | None = None
    episode_start: np.ndarray | None = None
    episode_intent: np.ndarray | None = None

    @property
    def name(self) -> str:
        """``world-<users>-s<seed>``; version 2 adds ``-v2`` (and ``-noep`` without episodes)."""
        base = f"world-{self.config.users}-s{self.config.seed}"
        if self.config.version >= 2:
            base += "-v2" + ("" if self.config.intent_episodes else "-noep")
        return base

    def user_ids(self) -> np.ndarray:
        """``[U]`` user ids as a fixed-width string array (no Python objects)."""
        return np.char.add("u", np.arange(self.config.users).astype(str))

    def item_ids(self) -> np.ndarray:
        """``[I]`` item ids as a fixed-width string array."""
        n_oa, n_m, n_c = self.item_counts
        return np.concatenate([np.char.add("oa", np.arange(n_oa).astype(str)),
                               np.char.add("m", np.arange(n_m).astype(str)),
                               np.char.add("c", np.arange(n_c).astype(str))])

    def split_of(self, split: str) -> np.ndarray:
        """``[E]`` mask of the item events in ``train``, ``valid`` or ``test`` (by round)."""
        last = self.config.rounds - 1
        if split == "train":
            return self.event_round < last - 1
        if split == "valid":
            return self.event_round == last - 1
        if split == "test":
            return self.event_round == last
        raise ValueError(f"unknown split {split!r}; expected train, valid or test")


@dataclass(frozen=True)
class World:
    """A generated world: the dataset and its ground truth as tables (small worlds)."""

    dataset: Dataset
    truth_users: pd.DataFrame
    truth_items: pd.DataFrame
    truth_ties: pd.DataFrame
    truth_events: pd.DataFrame
    config: WorldConfig
    codes: WorldCodes


def generate_codes(config: WorldConfig) -> WorldCodes:
    """Generate a world as integer codes. Deterministic: the same config gives identical arrays."""
    rng = np.random.default_rng(config.seed)
    n = config.users

    u, v, strength, group, membership = _make_ties(config, rng)
    interests = _make_interests(config, rng, membership)
    counts, item_topic, item_pop, item_kind, commercial, owner, category = _make_items(config, rng)
    join_round = np.where(rng.random(n) < config.late_joiner_share, config.rounds - 1, 0)
    activity = rng.lognormal(np.log(config.events_per_user) - 0.32, 0.8, n)
    plan = plan_intent(config, rng, membership) if config.version >= 2 else None
    ev_user, ev_item, ev_round, cause, via, day, intent = make_item_events(
        config, rng, n, u, v, strength, interests, item_topic, item_pop, item_kind,
        join_round, activity, plan, commercial)
    pair = _make_pair_events(config, rng, u, v, strength)

    round_len = config.days * DAY // config.rounds
    if day is None:
        ts = T0 + ev_round * round_len + rng.integers(0, round_len, len(ev_round))
    else:
        ts = T0 + np.minimum((day * DAY).astype(np.int64), (ev_round + 1) * round_len - 1)
    kinds = item_kind[ev_item]
    types = np.empty(len(ev_item), dtype=np.int8)
    pay, click = ITEM_EVENT_TYPES.index("pay"), ITEM_EVENT_TYPES.index("click")
    for k, name in enumerate(ITEM_KINDS):
        sel = kinds == k
        names, probs = ITEM_EVENT_BY_KIND[name]
        if name == "merchant":  # friends who paid there pull towards paying
            paid = rng.random(sel.sum()) < np.where(cause[sel] == 1, 0.6, 0.3)
            types[sel] = np.where(paid, pay, click)
        else:
            codes = np.array([ITEM_EVENT_TYPES.index(t) for t in names], dtype=np.int8)
            types[sel] = codes[rng.choice(len(names), sel.sum(), p=np.asarray(probs))]
    value = np.where(types == pay, np.round(rng.lognormal(3.5, 1.0, len(types)), 2), np.nan)
    order = np.lexsort((ts, ev_user))
    return WorldCodes(
        config, counts, item_kind.astype(np.int8), commercial, owner, category, item_topic,
        item_pop, join_round, activity, interests, u, v, strength, group, *pair,
        ev_user[order], ev_item[order], types[order], ts[order], value[order], ev_round[order],
        cause[order], via[order], None if intent is None else intent[order],
        None if plan is None else plan.propensity, None if plan is None else plan.starts,
        None if plan is None else plan.states)


def generate_world(config: WorldConfig) -> World:
    """Generate a world with its tables (pandas, string ids). Deterministic per config; for
    worlds too large for Python strings per row use :func:`generate_codes` and
    :func:`guanxi.features.world_io.write_world_codes`."""
    from guanxi.features.world_io import world_tables

    return world_tables(generate_codes(config))


def _make_ties(config: WorldConfig, rng: np.random.Generator):
    """Undirected ties (u < v), deduplicated, each with its strongest group's strength."""
    n = config.users
    us, vs, gs, membership = [], [], [], []
    for g, (size, m) in enumerate(zip(config.group_sizes + (n,), config.ties_per_user)):
        perm = rng.permutation(n)
        pos = np.empty(n, dtype=np.int64)
        pos[perm] = np.arange(n)
        if g < 3:
            membership.append(pos // size)
        src = np.repeat(np.arange(n), m)
        if g < 3:
            group_start = (pos[src] // size) * size
            group_len = np.minimum(size, n - group_start)
            partner = perm[group_start + rng.integers(0, group_len)]
        else:
            partner = rng.integers(0, n, len(src))
        us.append(src)
        vs.append(partner)
        gs.append(np.full(len(src), g))
    u, v, g = np.concatenate(us), np.concatenate(vs), np.concatenate(gs)
    keep = u != v
    u, v, g = np.minimum(u, v)[keep], np.maximum(u, v)[keep], g[keep]
    # The closest group a pair shares wins (family before friends before colleagues).
    order = np.lexsort((g, v, u))
    u, v, g = u[order], v[order], g[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    u, v, g = u[first], v[first], g[first]
    a = np.array([p[0] for p in config.strength_beta])[g]
    b = np.array([p[1] for p in config.strength_beta])[g]
    strength = rng.beta(a, b)
    return u, v, strength, g, membership


def _make_interests(config: WorldConfig, rng: np.random.Generator,
                    membership: list[np.ndarray]) -> np.ndarray:
    """[n, topics] topic mixes: family, friends and colleagues share tastes (homophily)."""
    n = len(membership[0])
    mix = np.zeros((n, config.topics))
    weights = (0.35, 0.25, 0.15)
    for groups, w in zip(membership, weights):
        topic = rng.dirichlet(np.full(config.topics, 0.2), groups.max() + 1)
        mix += w * topic[groups]
    mix += 0.25 * rng.dirichlet(np.full(config.topics, 0.3), n)
    return mix / mix.sum(axis=1, keepdims=True)


def _make_items(config: WorldConfig, rng: np.random.Generator):
    """Items as codes: counts, and per item topic, popularity, kind, commercial, owner, category."""
    n = config.users
    n_oa = max(10, int(round(n * config.official_accounts_per_1k / 1000)))
    n_m = max(20, int(round(n * config.merchants_per_1k / 1000)))
    n_c = max(50, int(round(n * config.content_per_user)))
    oa_topic = rng.integers(0, config.topics, n_oa)
    category = rng.integers(0, config.merchant_categories, n_m)
    m_topic = category % config.topics
    owner = rng.integers(0, n_oa, n_c)
    c_topic = np.where(rng.random(n_c) < 0.8, oa_topic[owner], rng.integers(0, config.topics, n_c))
    kind = np.repeat(np.array([0, 1, 2]), [n_oa, n_m, n_c])
    sponsored = rng.random(n_oa) < config.sponsored_share
    commercial = np.concatenate([sponsored, np.ones(n_m, bool), np.zeros(n_c, bool)])
    owners = np.concatenate([np.full(n_oa + n_m, -1), owner]).astype(np.int64)
    categories = np.concatenate([np.full(n_oa, -1), category, np.full(n_c, -1)]).astype(np.int64)
    topic = np.concatenate([oa_topic, m_topic, c_topic])
    popularity = rng.pareto(1.5, len(kind)) + 1.0
    return (n_oa, n_m, n_c), topic, popularity, kind, commercial, owners, categories


def _make_pair_events(config, rng, u, v, strength):
    """Pairwise events with Poisson counts rising with strength; strong ties reciprocate.

    Returns ``(user, friend, type, ts, value)`` arrays sorted by time, then by user id as a
    string (``u10`` before ``u2``), ties in generation order."""
    span = config.days * DAY
    cols = {k: [] for k in ("a", "b", "type", "ts", "value")}
    for code, (name, (scale, power)) in enumerate(PAIR_RATES.items()):
        count = rng.poisson(scale * strength ** power)
        tie = np.repeat(np.arange(len(u)), count)
        # Weak ties are one-sided: one side sends most; strong ties both ways.
        lean = 0.5 + 0.45 * (1.0 - strength[tie]) * np.where(tie % 2 == 0, 1, -1)
        from_u = rng.random(len(tie)) < lean
        cols["a"].append(np.where(from_u, u[tie], v[tie]))
        cols["b"].append(np.where(from_u, v[tie], u[tie]))
        cols["type"].append(np.full(len(tie), PAIR_EVENT_TYPES.index(name), dtype=np.int8))
        cols["ts"].append(T0 + rng.integers(0, span, len(tie)))
        amount = np.round(rng.lognormal(2.5, 0.7, len(tie)), 2)  # drawn for every type
        cols["value"].append(amount if name == "red_packet" else np.full(len(tie), np.nan))
    a, b, kind, ts, value = (np.concatenate(cols[k]) for k in ("a", "b", "type", "ts", "value"))
    ids = np.char.add("u", np.arange(config.users).astype(str))
    id_rank = np.empty(config.users, dtype=np.int64)
    id_rank[np.argsort(ids, kind="stable")] = np.arange(config.users)
    order = np.lexsort((id_rank[a], ts))
    return a[order], b[order], kind[order], ts[order], value[order]


def is_world_dir(path: str | Path) -> bool:
    return (Path(path) / "world.json").is_file()
