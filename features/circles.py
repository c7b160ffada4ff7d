"""Circles of trust per user: inner (strong ties), outer (weak ties), public (everyone else).

A user's inner circle is their contacts with strength at least ``inner_min_strength``, at most
``inner_max_size`` of them (the strongest first). Every other contact is outer. Circles are per
user, so they need not be symmetric: A may be in B's inner circle while B is in A's outer one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# (user, contact, strength, inner) circle rows, each [num_rows].
CircleRows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CircleConfig:
    """Args:
        inner_min_strength: tie strength at or above which a contact may be inner (default 0.5:
            the tie-strength model thinks the pair more likely than not to keep interacting).
        inner_max_size: most inner contacts per user (default 15, Dunbar's "sympathy group").
    """

    inner_min_strength: float = 0.5
    inner_max_size: int = 15

    def __post_init__(self) -> None:
        if not 0.0 <= self.inner_min_strength <= 1.0:
            raise ValueError(f"inner_min_strength must be in [0, 1], got {self.inner_min_strength}")
        if self.inner_max_size < 0:
            raise ValueError(f"inner_max_size must be >= 0, got {self.inner_max_size}")


def build_circles(a: np.ndarray, b: np.ndarray, strength: np.ndarray,
                  config: CircleConfig = CircleConfig()) -> CircleRows:
    """Per-user circles from undirected tie strengths.

    Args:
        a, b, strength: ``[num_pairs]`` undirected pairs as user codes and their strength.
        config: thresholds.

    Returns:
        ``(user, contact, strength, inner)``, each ``[2 * num_pairs]``: both directions of every
        pair, sorted by user then descending strength; ``inner`` True in the user's inner circle.
    """
    user = np.concatenate([a, b])
    order, inner = rank_circles(user, np.concatenate([strength, strength]), config)
    return user[order], np.concatenate([b, a])[order], np.concatenate([strength, strength])[order], inner


def rank_circles(user: np.ndarray, strength: np.ndarray, config: CircleConfig) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts (user, contact) rows by ``user`` code then descending ``strength``
    (ties in row order), and ``[num_rows]`` whether each sorted row is in the inner circle."""
    order = np.lexsort((-strength, user))
    codes, strength = user[order], strength[order]
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1]) if len(codes) else np.zeros(0, int)
    rank = np.arange(len(codes)) - np.repeat(starts, np.diff(np.append(starts, len(codes))))
    return order, (strength >= config.inner_min_strength) & (rank < config.inner_max_size)


def circle_summary(user: np.ndarray, strength: np.ndarray, inner: np.ndarray, num_users: int) -> dict[str, float]:
    """Summary statistics of circle rows ``[num_rows]``: mean and median inner/outer size over all
    ``num_users`` users (users with no contacts count as zero), and the share of users with an
    empty inner circle."""
    inner_all = np.bincount(user[inner], minlength=num_users)[:num_users].astype(np.float64)
    outer_all = np.bincount(user[~inner], minlength=num_users)[:num_users].astype(np.float64)
    return {
        "inner_mean": float(inner_all.mean()), "inner_median": float(np.median(inner_all)),
        "outer_mean": float(outer_all.mean()), "outer_median": float(np.median(outer_all)),
        "no_inner_share": float((inner_all == 0).mean()),
        "inner_strength_mean": float(strength[inner].mean()) if inner.any() else float("nan"),
    }


def circle_weights(inner: np.ndarray, strength: np.ndarray, inner_weight: float, outer_weight: float,
                   use_circles: bool = True) -> np.ndarray:
    """``[num_rows]`` weight of each (user, contact) circle row: ``inner_weight x strength`` in the
    user's inner circle, ``outer_weight x strength`` in the outer one (one weight for both when
    ``use_circles`` is off). The single definition training and serving share."""
    scale = np.where(inner | (not use_circles), inner_weight, outer_weight)
    return (scale * strength).astype(np.float32)


def circle_share(support: np.ndarray) -> np.ndarray:
    """The cold-start blend's social part, the one definition training and serving share: what a
    user's contacts engaged with, ``support`` ``[..., m]`` (``sum_v w_uv [v engaged with i]``),
    scaled to [0, 1] along its last axis. It is added to popularity in [0, 1], so contacts' items
    lead but a popular item is not drowned by one weak contact's obscure one (on the planted world,
    contacts' items alone did worse than popularity alone for new users)."""
    return support / np.maximum(support.max(axis=-1, keepdims=True), 1e-6)


def circles_table(user_ids: pa.Array, circles: CircleRows | None) -> pa.Table:
    """Circle rows as the table a bundle stores (``user_id, friend_id, strength, circle``, ids as
    strings, ``circle`` ``inner``/``outer``), taken from the ``[U]`` ids without a Python object
    per row; empty when ``circles`` is None."""
    if circles is None:
        circles = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool))
    user, contact, strength, inner = circles
    names = pa.DictionaryArray.from_arrays(pa.array((~inner).astype(np.int8)), pa.array(["inner", "outer"]))
    return pa.table({"user_id": user_ids.take(pa.array(user)).cast(pa.string()),
                     "friend_id": user_ids.take(pa.array(contact)).cast(pa.string()),
                     "strength": pa.array(np.asarray(strength, np.float64)),
                     "circle": names.cast(pa.string())})
