"""A served model's contacts: each user's contacts (CSR over user_idx, with the model's social
weight, the tie strength and the circle) and, per request, what those contacts engaged with."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from guanxi.features.ids import IdMap
from guanxi.serving.scores import Scored
from guanxi.features.circles import circle_weights


class Contacts:
    """Contacts per user as CSR arrays (``indptr [U + 1]`` into ``user``, ``weight``, ``strength``
    and ``inner``).

    Args:
        circles: the bundle's circles (``user_id``, ``friend_id``, ``strength``, ``circle``).
        idmap: the model's ids.
        history: ``[U, I]`` CSR of what each user engaged with.
        inner_w, outer_w, use_circles: the model's circle weighting (:func:`guanxi.features.circles.circle_weights`).
    """

    def __init__(self, circles: pd.DataFrame, idmap: IdMap, history: sp.csr_matrix, inner_w: float,
                 outer_w: float, use_circles: bool) -> None:
        n = idmap.num_users
        self.history = history
        if len(circles):
            u = idmap.user_index(circles["user_id"])
            v = idmap.user_index(circles["friend_id"])
            w = circle_weights(circles["circle"].to_numpy() == "inner", circles["strength"].to_numpy(),
                               inner_w, outer_w, use_circles)
            ok = (u >= 0) & (v >= 0)
            order = np.argsort(u[ok], kind="stable")
            self.user = v[ok][order]
            self.weight = w[ok][order]
            self.strength = circles["strength"].to_numpy(np.float32)[ok][order]
            self.inner = (circles["circle"].to_numpy() == "inner")[ok][order]
            self.indptr = np.concatenate([[0], np.cumsum(np.bincount(u[ok], minlength=n))])
        else:
            self.user = np.zeros(0, np.int64)
            self.weight = self.strength = np.zeros(0, np.float32)
            self.inner = np.zeros(0, bool)
            self.indptr = np.zeros(n + 1, np.int64)

    def without(self, blocked: np.ndarray) -> tuple["Contacts", np.ndarray]:
        """These contacts with the users flagged in ``blocked [U]`` removed from every user's list,
        and ``[U]`` bool: which users lost a contact."""
        owner = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        keep = ~blocked[self.user]
        out = object.__new__(Contacts)
        out.history = self.history
        out.user, out.weight, out.strength, out.inner = (a[keep] for a in (self.user, self.weight,
                                                                            self.strength, self.inner))
        n = len(self.indptr) - 1
        out.indptr = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=n))])
        return out, np.bincount(owner[~keep], minlength=n) > 0

    def of(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """User ``u``'s contacts ``[C]``: user_idx, social weight, tie strength, inner-circle flag."""
        lo, hi = self.indptr[u], self.indptr[u + 1]
        return self.user[lo:hi], self.weight[lo:hi], self.strength[lo:hi], self.inner[lo:hi]

    def entries(self, contacts: np.ndarray, extra: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass over the contacts' histories: sorted distinct items ``[m]``, and per (contact,
        item) entry its item position ``[e]`` and contact position ``[e]``. Never touches ``[I]``.

        ``extra``: further ``(contact position [x], item_idx [x])`` engagements (the contacts'
        recent ones), merged in; a (contact, item) pair counts once, however often it was seen."""
        h = self.history
        starts, ends = h.indptr[contacts], h.indptr[contacts + 1]
        lengths = ends - starts
        has_extra = extra is not None and len(extra[0])
        if not len(contacts) or (not lengths.sum() and not has_extra):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        entry = np.repeat(np.arange(len(contacts)), lengths)
        # positions of every entry in ``h.indices``: each contact's start plus its offset in the run
        offsets = np.arange(len(entry)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        idx = h.indices[starts[entry] + offsets].astype(np.int64)
        if has_extra:
            key = np.unique(np.concatenate([entry.astype(np.int64) * h.shape[1] + idx,
                                            extra[0].astype(np.int64) * h.shape[1] + extra[1]]))
            entry, idx = key // h.shape[1], key % h.shape[1]
        order = np.argsort(idx, kind="stable")
        ranked = idx[order]
        first = np.concatenate([[True], ranked[1:] != ranked[:-1]])
        inverse = np.empty(len(idx), np.int64)
        inverse[order] = np.cumsum(first) - 1
        return ranked[first], inverse, entry


def support_sum(scored: Scored, per_contact: np.ndarray) -> np.ndarray:
    """``[m]`` sum of ``per_contact [C]`` over the contacts who engaged with each of ``c_items``."""
    return np.bincount(scored.c_inverse, weights=per_contact[scored.c_entry], minlength=len(scored.c_items))


def aggregates(scored: Scored) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per contact item ``[m]``: inner-circle tie strength summed, contacts engaged, and the
    strongest outer-circle tie (0 when none)."""
    m = len(scored.c_items)
    strength = scored.strength.astype(np.float64)[scored.c_entry]                # [e]
    inner = scored.inner[scored.c_entry]
    inner_sum = np.bincount(scored.c_inverse, weights=np.where(inner, strength, 0.0), minlength=m)
    outer_max = np.zeros(m, np.float64)
    np.maximum.at(outer_max, scored.c_inverse[~inner], strength[~inner])
    return inner_sum, np.bincount(scored.c_inverse, minlength=m), outer_max
