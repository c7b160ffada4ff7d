"""The data side of retraining: base + new events with a temporal holdout, the drift report, and
the policy replay that must pass before a candidate may be promoted."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from guanxi.features.datasets import without_users
from guanxi.features.schema import NOT_INTERACTIONS, Dataset, empty_events, make_events
from guanxi.serving.forget_list import ForgetList
from guanxi.serving.policy import PolicyConfig, slate_violations
from guanxi.serving.recommender import Recommender

TIE_BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class RetrainData:
    """What one retrain trains and judges on.

    Args:
        dataset: ``train`` = the base data's past (train + valid) plus every acknowledged event
            before the holdout; ``test`` = the holdout.
        holdout: the newest arrivals since the last retrain (minus pairs already known).
        known: every event before the holdout (what rankings leave out).
        known_only: acknowledged events that are not interactions (``hide``): never trained on
            nor judged, but joined to the registered bundle's history, so the version never
            recommends them back.
        feedback_trained: acknowledged events in ``dataset.train``.
        held_back: events on items the catalogue has not classified (kept in the log, not used).
        unclassified: those items (sorted).
    """

    dataset: Dataset
    holdout: pd.DataFrame
    known: pd.DataFrame
    known_only: pd.DataFrame
    feedback_trained: int
    held_back: int
    unclassified: list[str]


def build_retrain_dataset(base: Dataset, events: pd.DataFrame, watermark: int, forget: ForgetList,
                          holdout_fraction: float, catalogue: pd.DataFrame | None = None) -> RetrainData:
    """Base data plus every acknowledged event, with the newest arrivals held out.

    Training data is cumulative: every event the log ever acknowledged (up to this retrain's
    watermark) is trained on, whatever earlier gates decided, except this retrain's holdout: the
    newest ``holdout_fraction`` of the events that arrived since ``watermark``, by arrival order
    (``seq``, the server's receive order, never the client's ``ts``). The next retrain trains on
    them.

    Args:
        base: the champion's data; its train and valid splits are the past. Its test split is not:
            it was only ever the original report's holdout.
        events: acknowledged events (``seq, user_id, item_id, type, ts, value, event_id``).
        watermark: the ``seq`` up to which the previous retrain read.
        forget: users dropped everywhere (base tables and events).
        holdout_fraction: newest share of the new events held out.
        catalogue: items classified since the base data (a catalogue update, the champion's own
            catalogue); they join ``base.items``, a later row winning. An event naming an item in
            neither is held back: an item first seen in feedback has no known kind or
            commerciality, so it never enters serving until a catalogue update classifies it.
    """
    events = events[events["type"] != "impression"]
    events = events[~forget.mask(events["user_id"].astype(str))].sort_values("seq", kind="stable")
    not_interaction = events["type"].isin(NOT_INTERACTIONS).to_numpy()
    known_only, events = events[not_interaction], events[~not_interaction]
    items = base.items if catalogue is None else pd.concat([base.items, catalogue], ignore_index=True)
    items = items.drop_duplicates("item_id", keep="last").reset_index(drop=True)
    classified = events["item_id"].astype(str).isin(set(items["item_id"].astype(str))).to_numpy()
    unclassified = sorted(set(events["item_id"].astype(str)[~classified]))
    events = events[classified]
    new = events[events["seq"] > watermark]
    cut = int(np.floor(len(new) * (1.0 - holdout_fraction)))
    newest = new.iloc[cut:]
    older = events[~events["seq"].isin(set(newest["seq"]))]
    as_events = lambda df: make_events(df["user_id"].to_numpy(), df["item_id"].to_numpy(),  # noqa: E731
                                       df["type"].to_numpy(), df["ts"].to_numpy(), df["value"].to_numpy(),
                                       df["event_id"].to_numpy())
    older, newest = as_events(older), as_events(newest)
    base, _ = without_users(base, forget.mask)
    past = pd.concat([base.train, base.valid], ignore_index=True)
    train = pd.concat([past, older], ignore_index=True)
    known_pairs = set(zip(train["user_id"].astype(str), train["item_id"].astype(str)))
    mask = [(u, i) not in known_pairs for u, i in zip(newest["user_id"].astype(str), newest["item_id"].astype(str))]
    holdout = newest[np.asarray(mask, bool)].drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
    users = pd.DataFrame({"user_id": pd.unique(pd.concat([
        base.users["user_id"].astype(str), events["user_id"].astype(str)]))})
    ds = Dataset(f"{base.name}+retrain", users, items, base.ties, base.pair_events, train, empty_events(), holdout)
    known_only = known_only[known_only["item_id"].astype(str).isin(set(items["item_id"].astype(str)))]
    return RetrainData(ds, holdout, train, as_events(known_only), len(older), int((~classified).sum()),
                       unclassified)


def drift_report(champion: Recommender, prep, pending: pd.DataFrame,
                 impressions: pd.DataFrame | None = None) -> dict:
    """What changed since the champion: event volume by type, the impressions served (and the
    share of them followed by feedback on the same item), new users and items, tie strengths."""
    users = set(pending["user_id"].astype(str))
    items = set(pending["item_id"].astype(str))
    known_users = set(champion.idmap.user_ids.astype(str))
    known_items = set(champion.idmap.item_ids.astype(str))
    old_s = champion.bundle.circles["strength"].to_numpy(float) if len(champion.bundle.circles) else np.zeros(0)
    new_s = prep.circles[2].astype(float) if prep.circles is not None else np.zeros(0)

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


def replay_policy(rec: Recommender, holdout: pd.DataFrame, n_users: int, policy: PolicyConfig,
                  k: int = 20) -> tuple[int, int]:
    """Serve ``n_users`` holdout users through ``rec`` with the deployed ``policy``, by the path a
    request takes (:meth:`guanxi.serving.recommender.Recommender.explain`), and count invariant violations
    (:func:`guanxi.serving.policy.slate_violations`). Returns ``(violations, slates)``."""
    users = sorted(holdout["user_id"].astype(str).unique())[:n_users]
    violations = 0
    for user in users:
        _, slate, cands, state = rec.explain(user, k, policy)
        violations += len(slate_violations(cands, state, policy, k, slate))
    return violations, len(users)
