"""The data side of retraining: base + new events with a temporal holdout, the drift report, and
the policy replay that must pass before a candidate may be promoted."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.schema import Dataset, empty_events, make_events, make_items
from serving.policy import PolicyConfig, apply_policy, slate_violations, UserState
from serving.recommender import Recommender

TIE_BINS = np.linspace(0.0, 1.0, 11)


def build_retrain_dataset(base: Dataset, pending: pd.DataFrame, forgotten: set[str],
                          holdout_fraction: float) -> tuple[Dataset, pd.DataFrame, pd.DataFrame]:
    """Base data + new events as one training set, and the holdout of the newest new events.

    Args:
        base: the champion's data; its train and valid splits (what the champion learnt from) are
            the past. Its test split is not: it was only ever the original report's holdout.
        pending: logged events since the watermark (``seq, user_id, item_id, type, ts, value, event_id``).
        forgotten: user ids dropped everywhere (base tables and events).
        holdout_fraction: newest share of the new events (by ``ts``, then arrival) held out.

    Returns:
        ``(dataset, holdout, known)``: ``dataset.test`` is the holdout; ``known`` every event
        before it (what rankings leave out). Holdout pairs already known are dropped (a consumed item
        cannot be recommended, so it could only count as a miss).
    """
    new = pending[pending["type"] != "impression"].sort_values(["ts", "seq"], kind="stable")
    new = make_events(new["user_id"].to_numpy(), new["item_id"].to_numpy(), new["type"].to_numpy(),
                      new["ts"].to_numpy(), new["value"].to_numpy(), new["event_id"].to_numpy())
    cut = int(np.floor(len(new) * (1.0 - holdout_fraction)))
    older, newest = new.iloc[:cut], new.iloc[cut:]
    keep = lambda df, col="user_id": df[~df[col].astype(str).isin(forgotten)]  # noqa: E731
    past = keep(pd.concat([base.train, base.valid], ignore_index=True))
    train = pd.concat([past, older], ignore_index=True)
    known_pairs = set(zip(train["user_id"].astype(str), train["item_id"].astype(str)))
    mask = [(u, i) not in known_pairs for u, i in zip(newest["user_id"].astype(str), newest["item_id"].astype(str))]
    holdout = newest[np.asarray(mask, bool)].drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
    users = pd.DataFrame({"user_id": pd.unique(pd.concat([
        keep(base.users)["user_id"].astype(str), new["user_id"].astype(str)]))})
    unknown = sorted(set(new["item_id"].astype(str)) - set(base.items["item_id"].astype(str)))
    items = base.items
    if unknown:
        # Items first seen in feedback: the catalogue has not told us their kind, so they enter as
        # non-commercial content until it does.
        items = pd.concat([items, make_items(np.array(unknown, object), "content")], ignore_index=True)
    ties = base.ties[~base.ties["user_id"].astype(str).isin(forgotten)
                     & ~base.ties["friend_id"].astype(str).isin(forgotten)]
    pairs = base.pair_events[~base.pair_events["user_id"].astype(str).isin(forgotten)
                             & ~base.pair_events["friend_id"].astype(str).isin(forgotten)]
    ds = Dataset(f"{base.name}+retrain", users, items, ties.reset_index(drop=True), pairs.reset_index(drop=True),
                 train, empty_events(), holdout)
    return ds, holdout, train


def drift_report(champion: Recommender, prep, pending: pd.DataFrame,
                 impressions: pd.DataFrame | None = None) -> dict:
    """What changed since the champion: event volume by type, the impressions served (and the
    share of them followed by feedback on the same item), new users and items, tie strengths."""
    users = set(pending["user_id"].astype(str))
    items = set(pending["item_id"].astype(str))
    known_users = set(champion.idmap.user_ids.astype(str))
    known_items = set(champion.idmap.item_ids.astype(str))
    old_s = champion.bundle.circles["strength"].to_numpy(float) if len(champion.bundle.circles) else np.zeros(0)
    new_s = prep.circles["strength"].to_numpy(float) if prep.circles is not None and len(prep.circles) else np.zeros(0)

    def summary(s: np.ndarray) -> dict:
        hist = np.histogram(s, TIE_BINS)[0]
        return {"ties": int(len(s)), "mean": float(s.mean()) if len(s) else None,
                "median": float(np.median(s)) if len(s) else None,
                "histogram": (hist / max(hist.sum(), 1)).round(4).tolist()}

    served: dict = {"impressions": 0}
    if impressions is not None and len(impressions):
        shown = impressions[["user_id", "item_id"]].astype(str).drop_duplicates()
        acted = set(zip(pending["user_id"].astype(str), pending["item_id"].astype(str)))
        served = {"impressions": int(len(impressions)), "distinct_user_items": int(len(shown)),
                  "acted_on_share": float(np.mean([(u, i) in acted for u, i in zip(shown["user_id"], shown["item_id"])])),
                  "by_model_version": {str(k): int(v) for k, v in impressions["model_version"].value_counts().items()}}
    return {"events_by_type": {str(k): int(v) for k, v in pending["type"].value_counts().sort_index().items()},
            "served": served,
            "events": int(len(pending)), "active_users": len(users), "new_users": len(users - known_users),
            "active_items": len(items), "new_items": len(items - known_items),
            "tie_strength": {"bins": TIE_BINS.round(2).tolist(), "champion": summary(old_s),
                             "candidate": summary(new_s)}}


def plot_drift(drift: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    types = drift["events_by_type"]
    a.bar(list(types), list(types.values()), color="#4c72b0")
    a.set_title(f"new events by type ({drift['events']}; {drift['new_users']} new users, "
                f"{drift['new_items']} new items)", fontsize=9)
    a.tick_params(axis="x", rotation=30)
    centers = (TIE_BINS[:-1] + TIE_BINS[1:]) / 2
    for name, color in (("champion", "#999999"), ("candidate", "#dd8452")):
        b.plot(centers, drift["tie_strength"][name]["histogram"], marker="o", color=color, label=name)
    b.set_xlabel("tie strength")
    b.set_ylabel("share of ties")
    b.set_title("tie-strength distribution", fontsize=9)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replay_policy(rec: Recommender, holdout: pd.DataFrame, n_users: int, k: int = 20,
                  policy: PolicyConfig | None = None) -> tuple[int, int]:
    """Serve ``n_users`` holdout users through ``rec`` with the policy on and count invariant
    violations (:func:`serving.policy.slate_violations`). Returns ``(violations, slates)``."""
    policy = policy or PolicyConfig()
    users = sorted(holdout["user_id"].astype(str).unique())[:n_users]
    violations = 0
    for user in users:
        scored = rec.score(user)
        cand = rec.candidates(scored, policy.candidates_per_kind(k))
        cands = rec.describe(scored, cand)
        state = UserState(consumed=scored.consumed, muted=np.zeros(0, np.int64))
        slate = apply_policy(cands, state, policy, k, scored.fallback)
        violations += len(slate_violations(cands, state, policy, k, slate))
    return violations, len(users)
