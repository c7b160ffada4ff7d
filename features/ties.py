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

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from features.schema import Dataset, PAIR_EVENT_TYPES
from features.split import per_user_holdout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TieStrengthConfig:
    """Args:
        label_window: newest share of the pair-event timeline whose activity is the label.
        holdout_share: share of pairs held out to measure ROC-AUC.
        seed: seed for the pair holdout, the item halving and the model.
        max_iter: boosting rounds of the classifier.
    """

    label_window: float = 0.3
    holdout_share: float = 0.5
    seed: int = 0
    max_iter: int = 200


@dataclass(frozen=True)
class TieStrengthReport:
    label: str
    pairs: int
    positive_rate: float
    auc: float
    heuristic: str
    heuristic_auc: float
    spearman_truth: float | None = None


def undirected_pairs(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index]:
    """Unique undirected contact pairs.

    Returns:
        ``a`` and ``b`` user indices ``[num_pairs]`` with ``a < b``; ``both`` ``[num_pairs]``, True
        when the tie is listed in both directions; and the user index (position -> user_id).
    """
    index = pd.Index(dataset.users["user_id"].astype(str))
    u = index.get_indexer(dataset.ties["user_id"].astype(str))
    v = index.get_indexer(dataset.ties["friend_id"].astype(str))
    n = len(index)
    a, b = np.minimum(u, v), np.maximum(u, v)
    key = a.astype(np.int64) * n + b
    uniq, counts = np.unique(key, return_counts=True)
    directed_key = np.unique(u.astype(np.int64) * n + v)
    both = np.isin(uniq, directed_key) & np.isin((uniq % n) * n + uniq // n, directed_key)
    return (uniq // n).astype(np.int64), (uniq % n).astype(np.int64), both, index


def _overlap(m: sp.csr_matrix, a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None,
             chunk: int = 200_000) -> np.ndarray:
    """Per pair: sum over columns k of ``m[a, k] * m[b, k] * weight[k]``, chunked to bound memory."""
    out = np.empty(len(a), dtype=np.float64)
    w = np.ones(m.shape[1]) if weight is None else weight
    for s in range(0, len(a), chunk):
        prod = m[a[s:s + chunk]].multiply(m[b[s:s + chunk]])
        out[s:s + chunk] = np.asarray(prod @ w).ravel()
    return out


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.data[:] = 1.0
    return m


def pair_features(a: np.ndarray, b: np.ndarray, both: np.ndarray, num_users: int,
                  item_user: np.ndarray, item_idx: np.ndarray, num_items: int,
                  pair_events: pd.DataFrame | None, pe_a: np.ndarray | None,
                  pe_b: np.ndarray | None, window_days: float) -> pd.DataFrame:
    """Features of each pair ``(a[i], b[i])`` from the given slice of history.

    Args:
        a, b: user indices ``[num_pairs]``.
        both: ``[num_pairs]`` the tie is listed both ways.
        item_user, item_idx: user and item index of each item event in the slice.
        pair_events: the pair events in the slice (or None) with ``pe_a``/``pe_b`` the sender and
            receiver user indices.
        window_days: the slice's length in days, to turn counts into rates.
    """
    friends = _binary(np.concatenate([a, b]), np.concatenate([b, a]), (num_users, num_users))
    deg = np.asarray(friends.sum(axis=1)).ravel()
    mutual = _overlap(friends, a, b)
    aa = _overlap(friends, a, b, 1.0 / np.log(np.maximum(deg, 2)))
    union = deg[a] + deg[b] - mutual
    items = _binary(item_user, item_idx, (num_users, num_items))
    n_items = np.asarray(items.sum(axis=1)).ravel()
    pop = np.asarray(items.sum(axis=0)).ravel()
    common = _overlap(items, a, b)
    item_aa = _overlap(items, a, b, 1.0 / np.log(np.maximum(pop, 2)))
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
    if pair_events is not None:
        n = num_users
        pair_key = a.astype(np.int64) * n + b
        ev_key = np.minimum(pe_a, pe_b).astype(np.int64) * n + np.maximum(pe_a, pe_b)
        pos = np.searchsorted(pair_key, ev_key)
        ok = (pos < len(pair_key)) & (pair_key[np.minimum(pos, len(pair_key) - 1)] == ev_key)
        pos, sender_is_a = pos[ok], (pe_a[ok] < pe_b[ok])
        types = pair_events["type"].to_numpy()[ok]
        ts = pair_events["ts"].to_numpy(dtype=np.float64, na_value=np.nan)[ok]
        per_month = 30.0 / max(window_days, 1e-9)
        total = np.bincount(pos, minlength=len(a)).astype(np.float64)
        for t in PAIR_EVENT_TYPES:
            f[f"{t}_rate"] = np.log1p(np.bincount(pos[types == t], minlength=len(a)) * per_month)
        f["pair_rate"] = np.log1p(total * per_month)
        from_a = np.bincount(pos[sender_is_a], minlength=len(a)).astype(np.float64)
        f["reciprocity"] = np.minimum(from_a, total - from_a) / np.maximum(total, 1)
        last = np.full(len(a), -np.inf)
        np.maximum.at(last, pos, np.nan_to_num(ts, nan=-np.inf))
        end = np.nanmax(ts) if len(ts) else 0.0
        f["days_since_last"] = np.where(np.isfinite(last), (end - last) / 86_400.0, window_days * 2)
    return pd.DataFrame(f)


def estimate_tie_strength(dataset: Dataset, config: TieStrengthConfig = TieStrengthConfig(),
                          truth: pd.DataFrame | None = None) -> tuple[pd.DataFrame, TieStrengthReport]:
    """Fit the tie-strength model on ``dataset`` and score every contact pair.

    Only training events are used (never valid or test).

    Returns:
        a table ``user_id, friend_id, strength`` with one row per undirected pair
        (``user_id`` sorts before ``friend_id`` by user index), and the report.
    """
    a, b, both, index = undirected_pairs(dataset)
    n_users = len(index)
    if len(a) == 0:
        empty = pd.DataFrame({"user_id": [], "friend_id": [], "strength": []})
        return empty, TieStrengthReport("none", 0, 0.0, float("nan"), "none", float("nan"))
    item_index = pd.Index(dataset.items["item_id"].astype(str))
    train = dataset.train
    ev_user = index.get_indexer(train["user_id"].astype(str))
    ev_item = item_index.get_indexer(train["item_id"].astype(str))
    pe = dataset.pair_events
    has_pair_ts = len(pe) > 0 and pe["ts"].notna().all()

    if has_pair_ts:
        label_kind = "later_window"
        pe_a = index.get_indexer(pe["user_id"].astype(str))
        pe_b = index.get_indexer(pe["friend_id"].astype(str))
        ts = pe["ts"].to_numpy(dtype=np.int64)
        lo, hi = ts.min(), ts.max()
        cutoff = lo + (1.0 - config.label_window) * (hi - lo)
        early = ts < cutoff
        item_ts = train["ts"].to_numpy(dtype=np.float64, na_value=np.nan)
        item_early = ~(item_ts >= cutoff)
        feats = pair_features(a, b, both, n_users, ev_user[item_early], ev_item[item_early],
                              len(item_index), pe[early], pe_a[early], pe_b[early],
                              (cutoff - lo) / 86_400.0)
        late_key = np.minimum(pe_a[~early], pe_b[~early]).astype(np.int64) * n_users + \
            np.maximum(pe_a[~early], pe_b[~early])
        label = np.isin(a.astype(np.int64) * n_users + b, late_key)
        full = pair_features(a, b, both, n_users, ev_user, ev_item, len(item_index), pe, pe_a, pe_b,
                             (hi - lo) / 86_400.0)
    else:
        label_kind = "co_engagement"
        half_b = per_user_holdout(train, 0.5, config.seed)
        feats = pair_features(a, b, both, n_users, ev_user[~half_b], ev_item[~half_b],
                              len(item_index), None, None, None, 1.0)
        held = _binary(ev_user[half_b], ev_item[half_b], (n_users, len(item_index)))
        label = _overlap(held, a, b) > 0
        # Scored on the same half the model learnt from: whole-history overlaps would be about
        # twice as large and push every probability up, which breaks the circle thresholds.
        full = feats

    rng = np.random.default_rng(config.seed)
    test_mask = rng.random(len(a)) < config.holdout_share
    model = HistGradientBoostingClassifier(max_iter=config.max_iter, random_state=config.seed)
    x = feats.to_numpy(dtype=np.float64)
    if label[~test_mask].all() or not label[~test_mask].any():
        raise ValueError(f"tie-strength labels ({label_kind}) are all {bool(label[0])}; "
                         "nothing to learn from")
    model.fit(x[~test_mask], label[~test_mask])
    auc = float(roc_auc_score(label[test_mask], model.predict_proba(x[test_mask])[:, 1]))
    best_name, best_auc = "none", 0.5
    for col in feats.columns:
        col_auc = roc_auc_score(label[test_mask], feats[col].to_numpy()[test_mask])
        col_auc = max(col_auc, 1.0 - col_auc)
        if col_auc > best_auc:
            best_name, best_auc = col, float(col_auc)
    strength = model.predict_proba(full.to_numpy(dtype=np.float64))[:, 1]
    out = pd.DataFrame({"user_id": index[a].to_numpy(dtype=object),
                        "friend_id": index[b].to_numpy(dtype=object), "strength": strength})
    rho = spearman_with_truth(out, truth) if truth is not None else None
    report = TieStrengthReport(label_kind, len(a), float(label.mean()), auc, best_name, best_auc, rho)
    logger.info("tie strength: %s", report)
    return out, report


def spearman_with_truth(strengths: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Spearman rank correlation between estimated and true strength over shared pairs."""
    def key(df: pd.DataFrame) -> pd.Series:
        u, f = df["user_id"].astype(str), df["friend_id"].astype(str)
        return pd.Series(np.where(u < f, u + "|" + f, f + "|" + u))
    est = pd.Series(strengths["strength"].to_numpy(), index=key(strengths))
    tru = pd.Series(truth["strength"].to_numpy(), index=key(truth))
    joined = pd.concat([est.rename("est"), tru.rename("true")], axis=1, join="inner")
    return float(joined["est"].rank().corr(joined["true"].rank()))
