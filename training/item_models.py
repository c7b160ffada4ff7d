"""Item-item baselines: EASE (Steck, WWW 2019) and cosine ItemKNN, each with its regulariser chosen
on the validation split only (never the test split), and no refit on train + valid.

Both score a user as ``x_u W`` where ``x_u`` ``[I]`` is the user's training interactions (binary)
and ``W`` ``[I, I]`` an item-item weight matrix fit on the training split:

- ``ease``: ``W = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^-1`` (zero diagonal), one
  dense Cholesky solve per ``lambda`` in float32 (about 40 s for 17.6k items here). Above
  ``ease_max_items`` items the dense solve does not fit this machine (``I^2`` floats three times
  over: 100k items would need 120 GB), so EASE is fit over the
  ``ease_max_items`` most popular items only: the others get no item-item score and rank after them
  by popularity (a documented approximation; the run logs how many interactions it covers).
- ``itemknn``: cosine similarity ``c_ij / (sqrt(n_i n_j) + shrink)`` from co-occurrence counts,
  each item keeping its ``k`` most similar items (sparse, never ``I x I`` dense).

The grid of ``lambda`` (EASE) or ``k`` (ItemKNN) is searched on validation recall@20; the winner is
what the test split sees.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

logger = logging.getLogger(__name__)

EASE_LAMBDAS = (30.0, 100.0, 300.0, 1000.0, 3000.0)
KNN_NEIGHBOURS = (20, 50, 100, 200, 400)
KNN_SHRINK = 10.0


@dataclass
class ItemModel:
    """A fitted item-item model: ``scores(u) = x_u W`` over the training interactions.

    Args:
        name: ``ease`` or ``itemknn``.
        weights: ``[I', I']`` dense (EASE) or ``[I, I]`` sparse CSR (ItemKNN), rows = input items.
        items: ``[I']`` the items ``weights`` covers (EASE over the most popular only), or None (all).
        train: ``[U, I]`` CSR training interactions (the model's input).
        popularity: ``[I]`` in [0, 1]: the order of items outside ``items``.
        param: the chosen regulariser (``lambda`` or ``k``).
    """

    name: str
    weights: np.ndarray | sp.csr_matrix
    items: np.ndarray | None
    train: sp.csr_matrix
    popularity: np.ndarray
    param: float

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """``[n, I]`` scores of users ``[n]``."""
        x = self.train[users.numpy()]
        if isinstance(self.weights, np.ndarray):
            sub = x[:, self.items] if self.items is not None else x
            dense = np.asarray(sub.toarray(), np.float32) @ self.weights
            out = np.broadcast_to(self.popularity * 1e-6 - 1.0, (len(users), x.shape[1])).copy()
            out[:, self.items if self.items is not None else slice(None)] = dense
        else:
            out = np.asarray((x @ self.weights).toarray(), np.float32)
            out += self.popularity * 1e-6             # ties among unscored items: by popularity
        return torch.from_numpy(out)


def gram(x: sp.csr_matrix) -> torch.Tensor:
    """``X^T X`` ``[I, I]`` dense float32 (item co-occurrence counts)."""
    return torch.from_numpy(np.asarray((x.T @ x).toarray(), np.float32))


def ease_weights(g: torch.Tensor, lam: float) -> np.ndarray:
    """EASE's ``W [I, I]`` (float32) from the Gram matrix ``g = X^T X`` (left unchanged): a
    Cholesky factorisation and inverse (torch's LAPACK; half the time of a general inverse)."""
    a = g.clone()
    a.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(a))
    del a
    w = p.div_(-p.diagonal()[None, :])
    w.fill_diagonal_(0.0)
    return w.numpy()


def cosine_neighbours(x: sp.csr_matrix, k: int, shrink: float = KNN_SHRINK, block: int = 2048) -> sp.csr_matrix:
    """ItemKNN's ``W [I, I]``: row ``j`` holds the similarities of ``j`` to the items ``i`` that keep
    ``j`` among their ``k`` nearest (so ``x_u W`` sums, for item ``i``, over ``i``'s neighbours)."""
    xt = x.T.tocsr().astype(np.float32)
    n = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
    norm = np.sqrt(np.maximum(n, 1.0))
    rows, cols, vals = [], [], []
    for lo in range(0, xt.shape[0], block):
        hi = min(lo + block, xt.shape[0])
        coo = (xt[lo:hi] @ xt.T).tocoo()                       # [b, I] co-occurrence counts
        keep = coo.row + lo != coo.col
        r, c, v = coo.row[keep], coo.col[keep], coo.data[keep]
        v = v / (norm[r + lo] * norm[c] + shrink)
        order = np.lexsort((-v, r))
        r, c, v = r[order], c[order], v[order]
        start = np.searchsorted(r, np.arange(hi - lo))
        rank = np.arange(len(r)) - start[r]
        top = rank < k
        rows.append(r[top] + lo)
        cols.append(c[top])
        vals.append(v[top].astype(np.float32))
    i, j, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    # i's neighbour j scores i through j: W[j, i]
    return sp.csr_matrix((v, (j, i)), shape=(x.shape[1], x.shape[1]))


def n_grid(name: str) -> int:
    """How many regulariser values the search of ``name`` tries when it is not cut short."""
    return len(EASE_LAMBDAS) if name == "ease" else len(KNN_NEIGHBOURS)


def fit_item_model(name: str, train: sp.csr_matrix, popularity: np.ndarray,
                   validate: Callable[[ItemModel], float], max_items: int = 20_000,
                   progress: Callable[[str], None] = logger.info,
                   out_of_time: Callable[[], bool] = lambda: False) -> tuple[ItemModel, list[dict]]:
    """Fit ``name`` for each value of its grid and keep the best on ``validate`` (validation
    recall@20); ``out_of_time()`` true after a value ends the search there (the time budget).
    Returns the model and one row per grid value tried (``param``, ``valid_recall_at_20``,
    ``seconds``)."""
    x = train.astype(np.float32)
    x.data[:] = 1.0
    history: list[dict] = []
    best: ItemModel | None = None
    best_score = -1.0
    if name == "ease":
        counts = np.asarray(x.sum(axis=0)).ravel()
        items = None
        if x.shape[1] > max_items:
            items = np.sort(np.argsort(-counts, kind="stable")[:max_items])
            covered = counts[items].sum() / max(counts.sum(), 1)
            progress(f"ease: {x.shape[1]} items is above ease_max_items={max_items}: fit over the "
                     f"{max_items} most popular ({covered:.1%} of training interactions)")
        g = gram(x[:, items] if items is not None else x)
        grid: tuple = EASE_LAMBDAS
        make = lambda p: ItemModel("ease", ease_weights(g, p), items, x, popularity, p)  # noqa: E731
    elif name == "itemknn":
        grid = KNN_NEIGHBOURS
        full = cosine_neighbours(x, max(KNN_NEIGHBOURS))
        make = lambda p: ItemModel("itemknn", _top_k_of(full, int(p)), None, x, popularity, p)  # noqa: E731
    else:
        raise ValueError(f"unknown item model {name!r}")
    for param in grid:
        start = time.perf_counter()
        model = make(param)
        score = validate(model)
        history.append({"param": float(param), "valid_recall_at_20": score,
                        "seconds": time.perf_counter() - start})
        progress(f"{name}: {'lambda' if name == 'ease' else 'k'}={param:g} valid recall@20 {score:.4f}")
        if score > best_score:
            best, best_score = model, score
        if out_of_time():
            break
    return best, history


def _top_k_of(w: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``w`` (columns = scored items, each with its neighbours in rows) keeping each column's
    ``k`` largest entries."""
    wc = w.tocsc()
    col = np.repeat(np.arange(wc.shape[1]), np.diff(wc.indptr))
    order = np.lexsort((-wc.data, col))
    rank = np.arange(len(order)) - wc.indptr[col[order]]
    keep = order[rank < k]
    return sp.csr_matrix((wc.data[keep], (wc.indices[keep], col[keep])), shape=w.shape)
