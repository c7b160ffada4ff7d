"""The intent-conditioned ranking judged as it is served: every held-out interaction ranked at its
own moment (docs/model.md, "Intent").

A served request reads the person's intent from every event acknowledged before it
(:mod:`guanxi.serving.intent_now`), so this protocol does the same. Each held-out interaction (the
first of each user–item pair, its item not already known) is ranked against the whole catalogue
at its own time:

- the scores are the trained version's (no retraining within the period);
- ``p`` is the filter's economic-state probability just before it, filtered from every earlier
  interaction, held-out ones included;
- the items the user engaged with earlier in the period are left out, as the service leaves out
  what a person has just engaged with.

It counts a hit when its item is in the top 20. recall@20 is the share of hits; ndcg@20 is the
mean of ``1 / log2(rank + 2)`` over the top 20. Both are taken over interactions, overall and per
group (for example each interaction's true intent).

The once-per-user protocol of :func:`guanxi.training.intent_fit.conditioned` ranks every user
once at the start of the period. Against a world's truth it asks for more than any reading of
behaviour can give: the truth knows the episode of a person idle for weeks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from guanxi.features.coded import CodedEvents
from guanxi.features.intent_filter import IntentFilter
from guanxi.training.evaluate import ScoreFn

K = 20
GROUPS = ("social", "economic")


@dataclass(frozen=True)
class EventTask:
    """Held-out interactions to rank one by one, each ``[N]``, sorted by user then time.

    Args:
        user, item, ts: the interactions; observed: each one's observed intent (1 economic).
        exclude: ``[num_users, num_items]`` CSR of known interactions left out of every ranking.
        train_count: ``[num_users]`` training items per user (0: the fallback scores them).
    """

    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    observed: np.ndarray
    exclude: sp.csr_matrix
    train_count: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def event_task(events: CodedEvents, observed: np.ndarray, exclude: sp.csr_matrix,
               train_count: np.ndarray) -> EventTask:
    """The :class:`EventTask` of ``events`` (``[E]``, observed intents ``observed [E]``): timed
    interactions only, the first of each user–item pair, none whose item ``exclude`` already holds."""
    timed = np.flatnonzero(np.isfinite(events.ts))
    user, item, ts = events.user[timed].astype(np.int64), events.item[timed].astype(np.int64), events.ts[timed]
    order = np.lexsort((ts, user))
    user, item, ts, obs = user[order], item[order], ts[order], observed[timed][order]
    _, first = np.unique(user * exclude.shape[1] + item, return_index=True)
    keep = np.zeros(len(user), bool)
    keep[first] = True
    keep &= np.asarray(exclude[user, item]).ravel() == 0
    return EventTask(user[keep], item[keep], ts[keep], obs[keep].astype(np.int8), exclude, train_count)


def before_each(flt: IntentFilter, state: np.ndarray, last_ts: np.ndarray, propensity: np.ndarray,
                task: EventTask) -> np.ndarray:
    """``[N]`` the economic-state probability just before each of ``task``'s interactions, the
    filter carried on from ``state``/``last_ts`` (``[U]``, left as they are) through the earlier ones."""
    p = np.empty(len(task))
    flt.run(task.user, task.observed, task.ts, state.copy(), last_ts.copy(), propensity, before=p)
    return p


def _earlier_items(task: EventTask) -> tuple[np.ndarray, np.ndarray]:
    """``(row, item)`` pairs, ``row`` ascending: for every interaction, the items of the same user's
    earlier ones (``task`` is sorted by user then time, so they are the rows just above it)."""
    n = len(task)
    first = np.concatenate([[True], task.user[1:] != task.user[:-1]]) if n else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    earlier = np.arange(n) - start                               # how many rows above are the user's
    rows = np.repeat(np.arange(n), earlier)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(earlier) - earlier, earlier)
    return rows, task.item[start[rows] + offset]


def event_metrics(score: ScoreFn, fallback: ScoreFn, task: EventTask,
                  shifts: dict[str, tuple[np.ndarray, np.ndarray]], economic_items: np.ndarray,
                  groups: np.ndarray | None = None, chunk: int | None = None) -> dict:
    """recall@20 and ndcg@20 of ``task``'s interactions for each ranking (module doc).

    Args:
        shifts: name -> ``(economic items' shift [N], social items' shift [N])`` added to each
            interaction's scores.
        economic_items: ``[I]`` bool, the items whose intent is economic.
        groups: optional ``[N]`` intent code (0 social, 1 economic; -1 unknown, left out of every
            number) to break the numbers down by.
        chunk: interactions scored at once (default: about 16M scores a chunk).

    Returns:
        name -> ``{"overall": {...}, "social": {...}, "economic": {...}}``, each with
        ``recall_at_20``, ``ndcg_at_20`` and ``events``.
    """
    n = len(task)
    chunk = chunk or max(64, (1 << 24) // max(len(economic_items), 1))
    econ = torch.from_numpy(np.asarray(economic_items, bool))
    hits = {name: np.zeros(n) for name in shifts}
    gains = {name: np.zeros(n) for name in shifts}
    e_row, e_item = _earlier_items(task)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        u = torch.from_numpy(task.user[a:b])
        s = score(u).float()
        cold = torch.from_numpy(task.train_count[task.user[a:b]] == 0)
        if cold.any():
            s[cold] = fallback(u[cold]).float()
        known = task.exclude[task.user[a:b]].tocoo()
        s[known.row, known.col] = -torch.inf
        lo, hi = np.searchsorted(e_row, [a, b])
        s[e_row[lo:hi] - a, e_item[lo:hi]] = -torch.inf
        # One top-20 per half serves every ranking: a shift moves all economic items (or all social
        # ones) by the same amount, so each rank is two counts, and a half with 20 items above the
        # target already makes it a miss.
        rows = torch.arange(b - a)
        target_item = torch.from_numpy(task.item[a:b])
        target = s[rows, target_item]
        is_e = econ[target_item]
        s_econ, s_soc = _top(s[:, econ]), _top(s[:, ~econ])
        for name, (up_e, up_s) in shifts.items():
            e = torch.from_numpy(np.asarray(up_e[a:b], np.float32))
            c = torch.from_numpy(np.asarray(up_s[a:b], np.float32))
            # the bar each half must clear; in the target's own half it is the target's score itself
            bar_e = torch.where(is_e, target, target + c - e)
            bar_s = torch.where(is_e, target + e - c, target)
            above_e = s_econ.shape[1] - torch.searchsorted(s_econ, bar_e[:, None].contiguous(), right=True)[:, 0]
            above_s = s_soc.shape[1] - torch.searchsorted(s_soc, bar_s[:, None].contiguous(), right=True)[:, 0]
            rank = (above_e + above_s).numpy()
            hits[name][a:b] = rank < K
            gains[name][a:b] = np.where(rank < K, 1.0 / np.log2(rank + 2.0), 0.0)
    out: dict = {}
    for name in shifts:
        per = {"overall": _summary(hits[name], gains[name], np.ones(n, bool) if groups is None else groups >= 0)}
        if groups is not None:
            for k, g in enumerate(GROUPS):
                if (groups == k).any():
                    per[g] = _summary(hits[name], gains[name], groups == k)
        out[name] = per
    return out


def _top(s: torch.Tensor) -> torch.Tensor:
    """``[n, min(K, m)]`` each row's highest scores of ``s [n, m]``, ascending."""
    return torch.topk(s, min(K, s.shape[1]), dim=1).values.flip(1).contiguous()


def _summary(hit: np.ndarray, gain: np.ndarray, sel: np.ndarray) -> dict:
    return {"recall_at_20": float(hit[sel].mean()) if sel.any() else 0.0,
            "ndcg_at_20": float(gain[sel].mean()) if sel.any() else 0.0, "events": int(sel.sum())}
