"""Tie strength: a scikit-learn model of whether a pair keeps interacting, as a number in [0, 1].

Label, by what the data has:
- ``later_window``: timestamped pair events (messages, red packets, Moments). Features come from
  events before a cutoff; the label is "the pair has any pair event after the cutoff".
- ``co_engagement``: only a friendship list (LastFM, Ciao, Yelp). Each user's training items are
  halved at random; features come from half A; the label is "the two engage with a common item in
  half B".
Features (earlier part only): pair-event counts per type, recency and reciprocity; whether the tie
is listed both ways; degrees, mutual friends, Jaccard and Adamic-Adar of the neighbourhoods;
common items, their Jaccard and Adamic-Adar. A gradient-boosted classifier is fit on half of the
pairs and judged (ROC-AUC) on the other half against the best single feature. The strength
served downstream is the model's probability: on features from the whole history for
``later_window`` (rates per month keep the scale), on the half-A features for ``co_engagement``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from guanxi.features.schema import PAIR_EVENT_TYPES
from guanxi.features.split import per_user_holdout

if TYPE_CHECKING:
    from guanxi.features.coded import CodedDataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TieStrengthConfig:
    """Args:
        label_window: newest share of the pair-event timeline whose activity is the label.
        holdout_share: share of pairs held out to measure ROC-AUC.
        seed: seed for the pair holdout, the item halving and the model.
        max_iter: boosting rounds of the classifier.
        max_fit_pairs: most pairs the classifier is fit on, and judged on (a random subset
            once the graph has more than twice as many pairs, ~300k users in the world): the
            fit's cost stops growing with the graph while every pair is still scored.
    """

    label_window: float = 0.3
    holdout_share: float = 0.5
    seed: int = 0
    max_iter: int = 200
    max_fit_pairs: int = 1_000_000


@dataclass(frozen=True)
class TieStrengthReport:
    label: str
    pairs: int
    positive_rate: float
    auc: float
    heuristic: str
    heuristic_auc: float
    spearman_truth: float | None = None


def undirected_pair_codes(u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected pairs ``(a, b, both)``, each ``[num_pairs]``, of directed ties ``u -> v``
    ``[num_ties]`` over ``n`` users, sorted by ``a`` then ``b`` with ``a < b``."""
    a, b = np.minimum(u, v).astype(np.int64), np.maximum(u, v).astype(np.int64)
    uniq = np.unique(a * n + b)
    directed_key = np.unique(u.astype(np.int64) * n + v)
    both = np.isin(uniq, directed_key) & np.isin((uniq % n) * n + uniq // n, directed_key)
    return (uniq // n).astype(np.int64), (uniq % n).astype(np.int64), both


def _overlap(m: sp.csr_matrix, a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None,
             chunk: int = 200_000) -> np.ndarray:
    """Per pair: sum over columns k of ``m[a, k] * m[b, k]`` (``[num_pairs]``) and, when
    ``weight`` ``[num_cols]`` is given, also of ``... * weight[k]`` (``[num_pairs, 2]``): one
    product serves both. Chunked to bound memory."""
    w = np.ones((m.shape[1], 1)) if weight is None else np.stack([np.ones(m.shape[1]), weight], axis=1)
    out = np.empty((len(a), w.shape[1]), dtype=np.float64)
    for s in range(0, len(a), chunk):
        prod = m[a[s:s + chunk]].multiply(m[b[s:s + chunk]])
        out[s:s + chunk] = np.asarray(prod @ w)
    return out[:, 0] if weight is None else out


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.data[:] = 1.0
    return m


def pair_features(a: np.ndarray, b: np.ndarray, both: np.ndarray, num_users: int,
                  item_user: np.ndarray, item_idx: np.ndarray, num_items: int,
                  pe_a: np.ndarray | None, pe_b: np.ndarray | None, pe_type: np.ndarray | None,
                  pe_ts: np.ndarray | None, window_days: float) -> pd.DataFrame:
    """Features of each pair ``(a[i], b[i])`` from the given slice of history.

    Args:
        a, b: user indices ``[num_pairs]``.
        both: ``[num_pairs]`` the tie is listed both ways.
        item_user, item_idx: user and item index of each item event in the slice.
        pe_a, pe_b, pe_type, pe_ts: the pair events in the slice (or None): sender and receiver
            user indices, type (index into ``PAIR_EVENT_TYPES``) and time, each ``[num_events]``.
        window_days: the slice's length in days, to turn counts into rates.
    """
    friends = _binary(np.concatenate([a, b]), np.concatenate([b, a]), (num_users, num_users))
    deg = np.asarray(friends.sum(axis=1)).ravel()
    mutual, aa = _overlap(friends, a, b, 1.0 / np.log(np.maximum(deg, 2))).T
    union = deg[a] + deg[b] - mutual
    items = _binary(item_user, item_idx, (num_users, num_items))
    n_items = np.asarray(items.sum(axis=1)).ravel()
    pop = np.asarray(items.sum(axis=0)).ravel()
    common, item_aa = _overlap(items, a, b, 1.0 / np.log(np.maximum(pop, 2))).T
    item_union = n_items[a] + n_items[b] - common
    f = {
        "both_ways": both.astype(np.float64),
        "deg_min": np.log1p(np.minimum(deg[a], deg[b])),
        "deg_max": np.log1p(np.maximum(deg[a], deg[b])),
        "mutual_friends": np.log1p(mutual),
        "friend_jaccard": mutual / np.maximum(union, 1),
        "friend_adamic_adar": aa,
        "common_items": np.log1p(common),
        "item_jaccard": common / np.maximum(item_union, 1),
        "item_adamic_adar": item_aa,
        "items_min": np.log1p(np.minimum(n_items[a], n_items[b])),
    }
    if pe_a is not None:
        n = num_users
        pair_key = a.astype(np.int64) * n + b
        ev_key = np.minimum(pe_a, pe_b).astype(np.int64) * n + np.maximum(pe_a, pe_b)
        pos = np.searchsorted(pair_key, ev_key)
        ok = (pos < len(pair_key)) & (pair_key[np.minimum(pos, len(pair_key) - 1)] == ev_key)
        pos, sender_is_a = pos[ok], (pe_a[ok] < pe_b[ok])
        types = pe_type[ok]
        ts = pe_ts[ok]
        per_month = 30.0 / max(window_days, 1e-9)
        total = np.bincount(pos, minlength=len(a)).astype(np.float64)
        for code, t in enumerate(PAIR_EVENT_TYPES):
            f[f"{t}_rate"] = np.log1p(np.bincount(pos[types == code], minlength=len(a)) * per_month)
        f["pair_rate"] = np.log1p(total * per_month)
        from_a = np.bincount(pos[sender_is_a], minlength=len(a)).astype(np.float64)
        f["reciprocity"] = np.minimum(from_a, total - from_a) / np.maximum(total, 1)
        last = np.full(len(a), -np.inf)
        np.maximum.at(last, pos, np.nan_to_num(ts, nan=-np.inf))
        end = np.nanmax(ts) if len(ts) else 0.0
        f["days_since_last"] = np.where(np.isfinite(last), (end - last) / 86_400.0, window_days * 2)
    return pd.DataFrame(f)


def estimate_tie_strength(data: "CodedDataset", config: TieStrengthConfig = TieStrengthConfig()
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, TieStrengthReport]:
    """Fit the tie-strength model on a coded dataset's training events and score every pair.

    Returns:
        ``a``, ``b`` (``a < b``) and ``strength``, each ``[num_pairs]``, and the report.
    """
    n_users, n_items = data.num_users, data.num_items
    a, b, both = undirected_pair_codes(data.tie_user, data.tie_friend, n_users)
    if len(a) == 0:
        return a, b, np.zeros(0), TieStrengthReport("none", 0, 0.0, float("nan"), "none", float("nan"))
    ev_user, ev_item = data.train.user, data.train.item
    has_pair_ts = len(data.pair_user) > 0 and not np.isnan(data.pair_ts).any()

    if has_pair_ts:
        label_kind = "later_window"
        pe_a, pe_b, pe_type, ts = data.pair_user, data.pair_friend, data.pair_type, data.pair_ts
        lo, hi = ts.min(), ts.max()
        cutoff = lo + (1.0 - config.label_window) * (hi - lo)
        early = ts < cutoff
        item_early = ~(data.train.ts >= cutoff)
        feats = pair_features(a, b, both, n_users, ev_user[item_early], ev_item[item_early], n_items,
                              pe_a[early], pe_b[early], pe_type[early], ts[early], (cutoff - lo) / 86_400.0)
        late_key = np.minimum(pe_a[~early], pe_b[~early]).astype(np.int64) * n_users + \
            np.maximum(pe_a[~early], pe_b[~early])
        label = np.isin(a.astype(np.int64) * n_users + b, late_key)
        del late_key
        full = pair_features(a, b, both, n_users, ev_user, ev_item, n_items, pe_a, pe_b, pe_type, ts,
                             (hi - lo) / 86_400.0)
    else:
        label_kind = "co_engagement"
        half_b = per_user_holdout(ev_user, ev_item, 0.5, config.seed)
        feats = pair_features(a, b, both, n_users, ev_user[~half_b], ev_item[~half_b], n_items,
                              None, None, None, None, 1.0)
        held = _binary(ev_user[half_b], ev_item[half_b], (n_users, n_items))
        label = _overlap(held, a, b) > 0
        # Scored on the same half the model learnt from: whole-history overlaps would be about
        # twice as large and push every probability up, which breaks the circle thresholds.
        full = feats

    rng = np.random.default_rng(config.seed)
    test_mask = rng.random(len(a)) < config.holdout_share
    fit_rows, judge_rows = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    if len(a) > 2 * config.max_fit_pairs:  # its own stream: small graphs draw exactly as before
        cap = np.random.default_rng([config.seed, 1])
        fit_rows = np.sort(cap.choice(fit_rows, min(len(fit_rows), config.max_fit_pairs), replace=False))
        judge_rows = np.sort(cap.choice(judge_rows, min(len(judge_rows), config.max_fit_pairs), replace=False))
    model = HistGradientBoostingClassifier(max_iter=config.max_iter, random_state=config.seed)
    x = feats.to_numpy(dtype=np.float64)
    if label[fit_rows].all() or not label[fit_rows].any():
        raise ValueError(f"tie-strength labels ({label_kind}) are all {bool(label[0])}; "
                         "nothing to learn from")
    model.fit(x[fit_rows], label[fit_rows])
    auc = float(roc_auc_score(label[judge_rows], model.predict_proba(x[judge_rows])[:, 1]))
    best_name, best_auc = "none", 0.5
    for col in feats.columns:
        col_auc = roc_auc_score(label[judge_rows], feats[col].to_numpy()[judge_rows])
        col_auc = max(col_auc, 1.0 - col_auc)
        if col_auc > best_auc:
            best_name, best_auc = col, float(col_auc)
    del x, feats
    strength = np.empty(len(a))
    for s in range(0, len(a), 1_000_000):  # bounded memory for the float64 copy
        strength[s:s + 1_000_000] = model.predict_proba(full.iloc[s:s + 1_000_000].to_numpy(np.float64))[:, 1]
    report = TieStrengthReport(label_kind, len(a), float(label.mean()), auc, best_name, best_auc, None)
    logger.info("tie strength: %s", report)
    return a, b, strength, report


def spearman_with_truth(a: np.ndarray, b: np.ndarray, strength: np.ndarray, truth_a: np.ndarray,
                   truth_b: np.ndarray, truth_strength: np.ndarray, num_users: int) -> float:
    """Spearman rank correlation between estimated and true strength over the pairs both hold:
    estimated pairs ``a, b, strength`` ``[n]`` against true pairs ``[m]``, as user codes."""
    def key(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.minimum(x, y).astype(np.int64) * num_users + np.maximum(x, y)
    _, est_at, true_at = np.intersect1d(key(a, b), key(truth_a, truth_b), return_indices=True)
    if len(est_at) < 2:
        return float("nan")
    return float(np.corrcoef(rankdata(strength[est_at]), rankdata(truth_strength[true_at]))[0, 1])
