"""The world's intent truth (version 2 worlds): who is here to buy, and when.

- Every user has a long-term economic propensity ``p`` in (0, 1): the share of their activity
  driven by economic intent. It is correlated within families and friends (a logit-normal whose
  latent score mixes a family term, a friends term and the user's own), with mean
  ``econ_propensity_mean`` and logit spread ``econ_propensity_spread``.
- With ``intent_episodes`` on, a user's time is cut into episodes (a Poisson process, mean length
  ``episode_days``), each driven by one intent drawn from ``p``: stretches of shopping (a move, a
  holiday, a wedding) and stretches of keeping up with people. Consecutive episodes may share an
  intent, so runs last longer than one episode. The intent at the time of each event is the
  event's true intent. With episodes off every event draws its intent from ``p`` alone: the same
  long-term mix, nothing to infer from recent behaviour (the control).
- An event's intent decides the kind of item an interest-driven event seeks
  (``economic_kind_mix`` or ``social_kind_mix``), and a copy of a contact's earlier engagement
  whose item does not fit the intent is mostly dropped for an interest-driven one
  (``intent_copy_fit``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntentPlan:
    """Per user ``propensity [U]``; with episodes, ``starts [U, K]`` (days, ascending, the first 0)
    and ``states [U, K]`` (0 social, 1 economic) of each user's episodes."""

    propensity: np.ndarray
    episodes: bool
    starts: np.ndarray | None = None
    states: np.ndarray | None = None

    def at(self, users: np.ndarray, days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[E]`` int8 true intent of events by ``users [E]`` at ``days [E]`` (days since the start)."""
        if not self.episodes:
            return (rng.random(len(users)) < self.propensity[users]).astype(np.int8)
        k = self.starts.shape[1]
        # Episodes of all users on one line: user u's start d sits at u * span + d.
        span = float(max(self.starts[:, -1].max(), days.max(initial=0.0))) + 1.0
        line = (np.arange(len(self.starts))[:, None] * span + self.starts).ravel()
        at = np.searchsorted(line, users * span + days, side="right") - 1
        return self.states.ravel()[np.clip(at, users * k, users * k + k - 1)]


def plan_intent(config, rng: np.random.Generator, membership: list[np.ndarray]) -> IntentPlan:
    """Propensities correlated within families and friends, and each user's episodes."""
    n = len(membership[0])
    fam = rng.standard_normal(membership[0].max() + 1)[membership[0]]
    friends = rng.standard_normal(membership[1].max() + 1)[membership[1]]
    own = rng.standard_normal(n)
    a, b = config.econ_family_weight, config.econ_friends_weight
    z = a * fam + b * friends + np.sqrt(max(1.0 - a * a - b * b, 0.0)) * own
    mean = config.econ_propensity_mean
    propensity = 1.0 / (1.0 + np.exp(-(np.log(mean / (1 - mean)) + config.econ_propensity_spread * z)))
    if not config.intent_episodes:
        return IntentPlan(propensity, False)
    k = int(np.ceil(4 * config.days / config.episode_days)) + 4
    gaps = rng.exponential(config.episode_days, (n, k))
    starts = np.concatenate([np.zeros((n, 1)), np.cumsum(gaps[:, :-1], axis=1)], axis=1)
    states = (rng.random((n, k)) < propensity[:, None]).astype(np.int8)
    return IntentPlan(propensity, True, starts, states)


@dataclass(frozen=True)
class IntentTruth:
    """What a version 2 world knows of intent: each event's (``events``: ``user_id, item_id, intent``
    0/1), each user's episodes (``episodes``: ``user_id, start_ts, intent``; None with episodes off)
    and propensity (``propensity``: ``user_id, econ_propensity``), and the mean episode length the
    world was generated with (``episode_days``; None with episodes off or when unknown)."""

    events: "pd.DataFrame"
    episodes: "pd.DataFrame | None"
    propensity: "pd.DataFrame"
    episode_days: float | None = None

    def state_at(self, at: float) -> "pd.DataFrame | None":
        """Each user's true episode at time ``at`` (``user_id, intent``), None without episodes."""
        import pandas as pd

        if self.episodes is None:
            return None
        ep = self.episodes[self.episodes["start_ts"] <= at].sort_values(["user_id", "start_ts"])
        last = ep.groupby("user_id", sort=False).tail(1)
        return pd.DataFrame({"user_id": last["user_id"].astype(str).to_numpy(),
                             "intent": last["intent"].to_numpy()})


def read_intent_truth(root) -> IntentTruth | None:
    """A version 2 world's intent truth, or None when the folder is not such a world."""
    from pathlib import Path

    import pandas as pd
    import pyarrow.parquet as pq

    truth = Path(root) / "truth"
    path = truth / "events.parquet"
    if not path.is_file() or "intent" not in pq.read_schema(path).names:
        return None
    code = lambda col: (col.astype(str) == "economic").astype(np.int8)  # noqa: E731
    events = pd.read_parquet(path, columns=["user_id", "item_id", "intent"])
    events["intent"] = code(events["intent"])
    episodes = None
    if (truth / "episodes.parquet").is_file():
        episodes = pd.read_parquet(truth / "episodes.parquet")
        episodes["intent"] = code(episodes["intent"])
    propensity = pd.read_parquet(truth / "users.parquet", columns=["user_id", "econ_propensity"])
    days = None
    if episodes is not None and (Path(root) / "world.json").is_file():
        import json

        days = json.loads((Path(root) / "world.json").read_text()).get("config", {}).get("episode_days")
    return IntentTruth(events, episodes, propensity, None if days is None else float(days))
