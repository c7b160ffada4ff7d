"""Circles of trust per user: inner (strong ties), outer (weak ties), public (everyone else).

A user's inner circle is their contacts with strength at least ``inner_min_strength``, at most
``inner_max_size`` of them (the strongest first). Every other contact is outer. Circles are per
user, so they need not be symmetric: A may be in B's inner circle while B is in A's outer one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


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


def build_circles(strengths: pd.DataFrame, config: CircleConfig = CircleConfig()) -> pd.DataFrame:
    """Per-user circles from undirected tie strengths.

    Args:
        strengths: one row per undirected pair: ``user_id, friend_id, strength``.
        config: thresholds.

    Returns:
        one row per (user, contact), both directions: ``user_id, friend_id, strength, circle``
        with ``circle`` in {``inner``, ``outer``}, sorted by user then descending strength.
    """
    s = strengths["strength"].to_numpy(dtype=np.float64)
    user = np.concatenate([strengths["user_id"].to_numpy(), strengths["friend_id"].to_numpy()])
    friend = np.concatenate([strengths["friend_id"].to_numpy(), strengths["user_id"].to_numpy()])
    codes, _ = pd.factorize(user)
    order, inner = rank_circles(codes, np.concatenate([s, s]), config)
    return pd.DataFrame({"user_id": user[order], "friend_id": friend[order],
                         "strength": np.concatenate([s, s])[order],
                         "circle": np.where(inner, "inner", "outer").astype(object)})


def circle_codes(a: np.ndarray, b: np.ndarray, strength: np.ndarray,
                 config: CircleConfig = CircleConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`build_circles` on user codes: undirected pairs ``a, b, strength`` ``[num_pairs]`` to
    ``(user, contact, strength, inner)``, each ``[2 * num_pairs]``, sorted by user then
    descending strength."""
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


def circle_summary(circles: pd.DataFrame, num_users: int) -> dict[str, float]:
    """Summary statistics: mean and median inner/outer size over all ``num_users`` users
    (users with no contacts count as zero), and the share of users with an empty inner circle."""
    codes, _ = pd.factorize(circles["user_id"])
    return circle_summary_codes(codes, circles["strength"].to_numpy(dtype=np.float64),
                                circles["circle"].to_numpy() == "inner", num_users)


def circle_summary_codes(user: np.ndarray, strength: np.ndarray, inner: np.ndarray,
                         num_users: int) -> dict[str, float]:
    """:func:`circle_summary` of circle rows as codes, each ``[num_rows]``."""
    inner_all = np.bincount(user[inner], minlength=num_users)[:num_users].astype(np.float64)
    outer_all = np.bincount(user[~inner], minlength=num_users)[:num_users].astype(np.float64)
    return {
        "inner_mean": float(inner_all.mean()), "inner_median": float(np.median(inner_all)),
        "outer_mean": float(outer_all.mean()), "outer_median": float(np.median(outer_all)),
        "no_inner_share": float((inner_all == 0).mean()),
        "inner_strength_mean": float(strength[inner].mean()) if inner.any() else float("nan"),
    }


def circle_weights(circles: pd.DataFrame, inner_weight: float, outer_weight: float,
                   use_circles: bool = True) -> np.ndarray:
    """``[num_rows]`` weight of each (user, contact) row of a circles table: ``inner_weight x
    strength`` in the user's inner circle, ``outer_weight x strength`` in the outer one (one weight
    for both when ``use_circles`` is off). The single definition training and serving share."""
    return circle_weight_values(circles["circle"].to_numpy() == "inner", circles["strength"].to_numpy(),
                                inner_weight, outer_weight, use_circles)


def circle_weight_values(inner: np.ndarray, strength: np.ndarray, inner_weight: float, outer_weight: float,
                         use_circles: bool = True) -> np.ndarray:
    """:func:`circle_weights` from arrays: ``inner`` and ``strength`` ``[num_rows]``."""
    scale = np.where(inner | (not use_circles), inner_weight, outer_weight)
    return (scale * strength).astype(np.float32)
