"""Pure scoring over a recommendation bundle (no BentoML import): top-N for a user id.

Known users are scored by their embedding against every item; items already consumed are left
out; the top is taken with ``argpartition`` (no full sort). A user unknown to the model falls back
to what their contacts engaged with (``circle``), or to popular items (``popular``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.adjacency import circle_weights
from training.bundle import Bundle


class Recommender:
    """Holds a bundle's arrays in memory and answers top-N queries.

    Args:
        bundle: a loaded :class:`training.bundle.Bundle`.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.idmap = bundle.idmap
        circles = bundle.circles
        self._contacts: dict[str, pd.DataFrame] = {
            str(u): g for u, g in circles.groupby(circles["user_id"].astype(str))} if len(circles) else {}
        config = bundle.meta.get("config", {})
        self.support_weight = float(bundle.meta.get("support_weight", 0.0))
        self._inner_weight = float(config.get("inner_weight", 1.0))
        self._outer_weight = float(config.get("outer_weight", 0.3))
        self._use_circles = bool(config.get("use_circles", True))

    def social_support(self, user_id: str) -> np.ndarray:
        """``[I]`` ``sum_v w_uv [v engaged with i]`` over the user's contacts ``v``, with
        ``w_uv = circle weight x tie strength`` (the model's own support definition)."""
        b = self.bundle
        support = np.zeros(self.idmap.num_items, np.float32)
        contacts = self._contacts.get(user_id)
        if contacts is None or not len(contacts):
            return support
        c_idx = self.idmap.user_index(contacts["friend_id"].astype(str))
        weights = circle_weights(contacts, self._inner_weight, self._outer_weight, self._use_circles)
        for ci, w in zip(c_idx, weights):
            if ci >= 0:
                support[b.history.indices[b.history.indptr[ci]:b.history.indptr[ci + 1]]] += w
        return support

    def _scores(self, user_id: str) -> tuple[np.ndarray, str | None, np.ndarray]:
        """Scores ``[I]``, the fallback used (None, 'circle', 'popular') and consumed item indices."""
        b = self.bundle
        u = int(self.idmap.user_index([user_id])[0])
        if u >= 0 and b.user_emb is not None and b.history.indptr[u + 1] > b.history.indptr[u]:
            seen = b.history.indices[b.history.indptr[u]:b.history.indptr[u + 1]]
            scores = b.item_emb @ b.user_emb[u]
            if self.support_weight:
                scores = scores + self.support_weight * np.log1p(self.social_support(user_id))
            return scores, None, seen
        seen = (b.history.indices[b.history.indptr[u]:b.history.indptr[u + 1]]
                if u >= 0 else np.zeros(0, np.int64))
        support = self.social_support(user_id)
        if support.any():
            # Same blend as training.adjacency.circle_scores.
            return support / support.max() + b.popularity, "circle", seen
        return b.popularity.astype(np.float32), "popular", seen

    def top_items(self, user_id: str, k: int = 20) -> list[tuple[str, float]]:
        """The ``k`` best (item_id, score) pairs for ``user_id``, consumed items left out."""
        ranked, _ = self.rank(user_id, k)
        return [(str(self.idmap.item_ids[i]), float(s)) for i, s in ranked]

    def rank(self, user_id: str, k: int, allowed: np.ndarray | None = None
             ) -> tuple[list[tuple[int, float]], str | None]:
        """Top ``k`` (item_idx, score) for ``user_id`` among ``allowed`` items (bool ``[I]``)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scores, fallback, seen = self._scores(str(user_id))
        scores = scores.astype(np.float32, copy=True)
        scores[seen] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if np.isfinite(scores[i])], fallback
