"""Pathways, the collective map: for each intent, how engagements reached people (``guanxi
pathways``, and an artifact of every training run).

Each interaction (an event that counts toward a mix: :func:`guanxi.features.intent.counts_toward_mix`)
takes the first path that explains it, in this order:

- ``self-sought``: the user had deliberately engaged (``follow`` or ``pay``) before with the item
  itself, its account or its category (the policy's self-sought rule);
- ``inner circle``: an inner-circle contact had engaged with the item before;
- ``outer circle``: an outer-circle contact had;
- ``public world``: nobody the user knows had (strangers, popularity, the user's own taste).

"Before" is by event time; in data without times any other engagement counts. A world's truth
says what really happened: each event came from the user's own interest or copied a contact, and
that contact's true tie was strong (>= 0.5) or weak; that table is given beside the observed one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from guanxi.features.coded import CodedDataset, CodedEvents
from guanxi.features.intent import INTENTS, IntentTable, counts_toward_mix
from guanxi.features.schema import ITEM_EVENT_TYPES

PATHS = ("self-sought", "inner circle", "outer circle", "public world")
TRUE_PATHS = ("own interest", "strong tie", "weak tie")
DELIBERATE = ("follow", "pay")


@dataclass(frozen=True)
class Pathways:
    """``observed``: counts per intent x path; ``truth``: per intent x true path (None without it)."""

    observed: pd.DataFrame
    truth: pd.DataFrame | None

    def shares(self, table: pd.DataFrame) -> pd.DataFrame:
        """Each intent's row as shares of its engagements."""
        return table.div(table.sum(axis=1).replace(0, np.nan), axis=0).round(4)

    def to_dict(self) -> dict:
        out = {"paths": list(PATHS), "counts": self.observed.to_dict(orient="index"),
               "shares": self.shares(self.observed).to_dict(orient="index")}
        if self.truth is not None:
            out["truth"] = {"paths": list(TRUE_PATHS), "counts": self.truth.to_dict(orient="index"),
                            "shares": self.shares(self.truth).to_dict(orient="index")}
        return out


def _first_times(keys: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``keys`` and the earliest time of each."""
    order = np.lexsort((ts, keys))
    keys, ts = keys[order], ts[order]
    first = np.concatenate([[True], keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, bool)
    return keys[first], ts[first]


def _earlier(query: np.ndarray, at: np.ndarray, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``[Q]`` whether ``query`` keys were seen at a time before ``at`` (any time when untimed)."""
    if not len(keys):
        return np.zeros(len(query), bool)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = keys[pos] == query
    return hit & (~np.isfinite(at) | ~np.isfinite(times[pos]) | (times[pos] < at))


def _via_contacts(ev: CodedEvents, ts: np.ndarray, rows: tuple[np.ndarray, np.ndarray], n_items: int,
                  first_keys: np.ndarray, first_ts: np.ndarray, n_users: int) -> np.ndarray:
    """``[E]`` whether any of the user's contacts in ``rows`` (user, contact) engaged with the item first."""
    user, contact = rows
    order = np.argsort(user, kind="stable")
    user, contact = user[order], contact[order]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=n_users))])
    counts = ptr[ev.user + 1] - ptr[ev.user]
    event = np.repeat(np.arange(len(ev.user)), counts)
    offsets = np.arange(len(event)) - np.repeat(np.cumsum(counts) - counts, counts)
    c = contact[ptr[ev.user[event]] + offsets]
    hit = _earlier(c.astype(np.int64) * n_items + ev.item[event], ts[event], first_keys, first_ts)
    return np.bincount(event[hit], minlength=len(ev.user)) > 0


def pathways(data: CodedDataset, circles, table: IntentTable, truth: pd.DataFrame | None = None,
             truth_ties: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             max_events: int = 0, seed: int = 0) -> Pathways:
    """The observed pathways of every interaction in ``data`` (train, valid and test), and with a
    world's truth (``truth``: ``user_code``, ``via_code``, ``cause``, ``intent`` per event;
    ``truth_ties``: ``(user, friend, strength)`` codes) the true ones.

    Args:
        circles: circle rows ``(user, contact, strength, inner)`` or None.
        max_events: above this many interactions, classify those of a seeded sample of users that
            holds about this many (everyone's engagements still count as the contacts'); 0: all.
    """
    every = CodedEvents.concat([data.train, data.valid, data.test])
    every = every.take(counts_toward_mix(every.type))
    n_users, n_items = data.num_users, data.num_items
    first_keys, first_ts = _first_times(every.user.astype(np.int64) * n_items + every.item,
                                        every.ts.astype(np.float64))
    ev = every
    if max_events and len(every.user) > max_events:
        keep = np.random.default_rng(seed).random(n_users) < max_events / len(every.user)
        ev = every.take(keep[every.user])
    ts = ev.ts.astype(np.float64)
    intent = table.of_events(ev.type, data.item_kind[ev.item], data.commercial[ev.item])
    deliberate = np.isin(ev.type, [ITEM_EVENT_TYPES.index(t) for t in DELIBERATE])
    d_keys, d_ts = _first_times(ev.user[deliberate].astype(np.int64) * n_items + ev.item[deliberate], ts[deliberate])
    # (the user's own deliberate engagements: within the sampled users' events, which hold all of theirs)
    category = pd.factorize(pd.Series(data.category.to_numpy(zero_copy_only=False)), use_na_sentinel=True)[0]
    n_cat = int(category.max()) + 2
    cat_of = category[ev.item[deliberate]]
    c_ok = cat_of >= 0
    c_keys, c_ts = _first_times(ev.user[deliberate][c_ok].astype(np.int64) * n_cat + cat_of[c_ok], ts[deliberate][c_ok])
    owner = data.owner[ev.item]
    sought = _earlier(ev.user.astype(np.int64) * n_items + ev.item, ts, d_keys, d_ts)
    has_owner = owner >= 0
    sought[has_owner] |= _earlier(ev.user[has_owner].astype(np.int64) * n_items + owner[has_owner], ts[has_owner],
                                  d_keys, d_ts)
    cat = category[ev.item]
    has_cat = cat >= 0
    sought[has_cat] |= _earlier(ev.user[has_cat].astype(np.int64) * n_cat + cat[has_cat], ts[has_cat], c_keys, c_ts)
    path = np.full(len(ev.user), 3, np.int8)
    if circles is not None and len(circles[0]):
        user, contact, _, inner = circles
        outer = _via_contacts(ev, ts, (user[~inner], contact[~inner]), n_items, first_keys, first_ts, n_users)
        path[outer] = 2
        path[_via_contacts(ev, ts, (user[inner], contact[inner]), n_items, first_keys, first_ts, n_users)] = 1
    path[sought] = 0
    observed = pd.crosstab(pd.Categorical(np.asarray(INTENTS)[intent], INTENTS),
                           pd.Categorical(np.asarray(PATHS)[path], PATHS), dropna=False)
    observed.index.name, observed.columns.name = "intent", "path"
    return Pathways(observed, _true_paths(truth, truth_ties, n_users) if truth is not None else None)


def _true_paths(truth: pd.DataFrame, ties, n_users: int) -> pd.DataFrame:
    """Per true intent (or the observed one), how each event really came: own interest, or a copy
    through a strong (>= 0.5) or weak tie."""
    strong = set()
    if ties is not None:
        u, v, s = ties
        keep = s >= 0.5
        strong = set(zip(u[keep].tolist(), v[keep].tolist())) | set(zip(v[keep].tolist(), u[keep].tolist()))
    kind = np.where(truth["cause"].to_numpy() == "social", 2, 0)
    pairs = zip(truth["user_code"].tolist(), truth["via_code"].tolist())
    is_strong = np.fromiter(((a, b) in strong for a, b in pairs), bool, len(truth))
    kind[(kind == 2) & is_strong] = 1
    table = pd.crosstab(pd.Categorical(truth["intent"], INTENTS),
                        pd.Categorical(np.asarray(TRUE_PATHS)[kind], TRUE_PATHS), dropna=False)
    table.index.name, table.columns.name = "intent", "true path"
    return table


def plot_pathways(ways: Pathways, path: Path, title: str = "") -> None:
    """A Sankey-style picture: intents on the left, paths on the right, ribbons by engagements."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    panels = [("observed", ways.observed)] + ([("truth", ways.truth)] if ways.truth is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.8), squeeze=False)
    colors = {"social": "#4c72b0", "economic": "#dd8452"}
    for ax, (name, table) in zip(axes[0], panels):
        total = float(table.to_numpy().sum()) or 1.0
        gap = 0.03
        left_y, y = {}, 1.0
        for intent in table.index:
            h = table.loc[intent].sum() / total * (1 - gap * (len(table.index) - 1))
            left_y[intent] = [y, y - h]
            y -= h + gap
        right_y, y = {}, 1.0
        for col in table.columns:
            h = table[col].sum() / total * (1 - gap * (len(table.columns) - 1))
            right_y[col] = [y, y - h]
            y -= h + gap
        for intent in table.index:
            for col in table.columns:
                h = table.loc[intent, col] / total * (1 - gap * (len(table.index) - 1))
                if h <= 0:
                    continue
                l0, r0 = left_y[intent][0], right_y[col][0]
                verts = [(0.1, l0), (0.5, l0), (0.5, r0), (0.9, r0), (0.9, r0 - h), (0.5, r0 - h), (0.5, l0 - h),
                         (0.1, l0 - h), (0.1, l0)]
                codes = [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.LINETO,
                         MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.CLOSEPOLY]
                ax.add_patch(PathPatch(MplPath(verts, codes), color=colors.get(intent, "#999999"), alpha=0.45, lw=0))
                left_y[intent][0] -= h
                right_y[col][0] -= h
        for intent, n in table.sum(axis=1).items():
            ax.text(0.08, (left_y[intent][0] + left_y[intent][1]) / 2 + table.loc[intent].sum() / total / 2,
                    f"{intent}\n{n:,}", ha="right", va="center", fontsize=9)
        for col, n in table.sum(axis=0).items():
            ax.text(0.92, right_y[col][1] + table[col].sum() / total / 2, f"{col}  {n / total:.0%}",
                    ha="left", va="center", fontsize=9)
        ax.set_xlim(-0.25, 1.3)
        ax.set_ylim(-0.05, 1.05)
        ax.axis("off")
        ax.set_title(f"{title} {name}".strip(), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
