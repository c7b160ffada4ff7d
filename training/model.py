"""Graph recommenders propagated as sparse matrix products over a cached normalised adjacency.

One class serves the ``guanxi`` model and the graph baselines; what differs is the adjacency
they propagate over (see ``training/adjacency.py``) and the loss:

- ``bpr``: matrix factorisation, no propagation (``num_layers = 0``);
- ``lightgcn``: users and items only;
- ``lightgcn-s``: plus every social edge with weight 1;
- ``guanxi``: interactions weighted by event type, contacts weighted by tie strength and by
  circle (inner ties count more than outer ones), content linked to its publishing account,
  an explicit social-support term (what the user's circles engaged with, learnt weight), trained
  with a sampled-softmax loss on cosine scores plus a per-item bias.

Propagation is LightGCN's: ``E^(l+1) = A E^(l)``, final embedding the mean of layers 0..L, score
the dot product of user and item embeddings.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import LGConv

from guanxi.training.catalogue_lse import SparseTerm, catalogue_logsumexp
from guanxi.training.social_gate import SocialGate


def sparse_dense_mm(adj: Tensor, x: Tensor) -> Tensor:
    """``adj @ x`` for a sparse CSR ``adj`` ``[N, M]`` and a dense ``x`` ``[M, d]``: ``[N, d]``.

    On CPU the product is written straight into a fresh output (``addmm`` with ``beta = 0``),
    bit for bit what ``torch.sparse.mm`` returns but without its zero-filled output and copy:
    81 ms against 110 ms on the 100k-user world's ``[182500, 182500]`` adjacency (5.1M
    entries, ``d = 64``, two cores), six products a training step.
    """
    if x.device.type != "cpu" or adj.layout != torch.sparse_csr:
        return torch.sparse.mm(adj, x)
    out = torch.empty(adj.shape[0], x.shape[1], dtype=x.dtype)
    return torch.addmm(out, adj, x, beta=0, out=out)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``: the gradient is ``A @ grad`` as well, which
    spares autograd the CSR transpose (about a third of a step on CPU)."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return sparse_dense_mm(adj, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, sparse_dense_mm(ctx.adj, grad)


class SymmetricLGConv(LGConv):
    """PyG's ``LGConv`` (no normalisation: the adjacency comes normalised) propagating over a
    symmetric ``torch.sparse`` CSR adjacency; needs neither pyg-lib nor torch-sparse. Its own op
    because it is measured faster: forward + backward 1.5x (LastFM) to 3.5x (world-10k) quicker
    than ``LGConv(normalize=False)`` as shipped on the same CSR, same output
    (``experiments/bench_lgconv.py``): the backward reuses ``A^T = A`` instead of transposing."""

    def __init__(self) -> None:
        super().__init__(normalize=False)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:  # type: ignore[override]
        return _SymmetricSpMM.apply(adj, x)


class GraphRecommender(torch.nn.Module):
    """Embeddings of users and items refined by ``num_layers`` rounds of propagation.

    Args:
        num_users: number of users ``U``.
        num_items: number of items ``I``.
        dim: embedding size ``d``.
        num_layers: propagation rounds ``L`` (0 = plain matrix factorisation).
        adjacency: ``[U + I, U + I]`` symmetric normalised CSR (users first), or None when
            ``num_layers == 0``.
        init_std: standard deviation of the initial embeddings.
        cosine: score by cosine similarity (what the ``softmax`` loss trains) instead of the
            dot product.
        temperature: cosine scores are divided by it (cosine models only).
        item_bias: add a learnt per-item bias to cosine scores (``[I]``): cosine alone cannot
            express popularity, which the bias absorbs.
        support: optional ``[U, I]`` CSR of social support, ``log1p(sum_v w_uv [v engaged with
            i])`` over the user's contacts ``v`` with circle weights ``w_uv``; when given, scores
            gain ``support_weight * support[u, i]`` with a learnt ``support_weight`` (anything
            indexable like it, e.g. :class:`guanxi.training.sampled.SupportRows`).
        social_gate: optional :class:`guanxi.training.social_gate.SocialGate` holding the
            user-user entries (then absent from ``adjacency``), each rescaled by a learnt gate
            in every propagation round.
    """

    def __init__(self, num_users: int, num_items: int, dim: int = 64, num_layers: int = 3,
                 adjacency: Tensor | None = None, init_std: float = 0.1,
                 cosine: bool = False, temperature: float = 1.0, item_bias: bool = False,
                 support: sp.csr_matrix | None = None, social_gate: SocialGate | None = None) -> None:
        super().__init__()
        if num_layers > 0 and adjacency is None:
            raise ValueError("num_layers > 0 needs an adjacency")
        if adjacency is not None and adjacency.shape != (num_users + num_items,) * 2:
            raise ValueError(f"adjacency must be [{num_users + num_items}]^2, got {tuple(adjacency.shape)}")
        self.num_users = num_users
        self.num_items = num_items
        self.num_layers = num_layers
        self.embedding = torch.nn.Embedding(num_users + num_items, dim)
        torch.nn.init.normal_(self.embedding.weight, std=init_std)
        self.convs = torch.nn.ModuleList(SymmetricLGConv() for _ in range(num_layers))
        self.adjacency = adjacency
        self.cosine = cosine
        self.temperature = temperature if cosine else 1.0
        self.item_bias = torch.nn.Parameter(torch.zeros(num_items)) if (cosine and item_bias) else None
        self.support = support
        # Starts at 0: the term earns its weight from the data or stays out of the way.
        self.support_weight = torch.nn.Parameter(torch.tensor(0.0)) if support is not None else None
        self.social_gate = social_gate
        self.support_ties = "circles"     # whose engagement the support counts (serving reads it)

    def attach_listed_support(self, support: "sp.csr_matrix") -> None:
        """After training: add ``support`` ``[U, I]`` (``log1p`` of how many listed contacts engaged,
        every tie weighing 1) to the scores with weight 1, for :func:`tune_support
        <guanxi.training.support_scale.tune_support>` to rescale on validation. Nothing of it is
        learnt; a model that already has a support term cannot take a second one."""
        if self.support is not None:
            raise ValueError("the model already has a social-support term")
        self.support = support
        self.support_weight = torch.nn.Parameter(torch.tensor(1.0, device=self.embedding.weight.device),
                                                 requires_grad=False)
        self.support_ties = "listed"

    def support_pairs(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """``[n]`` social support of the pairs (0 without a support matrix)."""
        if self.support is None:
            return torch.zeros(len(user_idx), device=self.embedding.weight.device)
        vals = np.asarray(self.support[user_idx.cpu().numpy().copy(), item_idx.cpu().numpy().copy()]).ravel()
        return torch.from_numpy(vals.astype(np.float32)).to(self.embedding.weight.device)

    def support_block(self, user_idx: Tensor, item_idx: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The non-zeros of the social support of users ``[n]`` for items ``[m]`` (all items when
        None): ``(rows, cols, values)``, each ``[nnz]``, sorted by row, indexing an ``[n, m]`` block."""
        rows = self.support[user_idx.cpu().numpy().copy()]
        if item_idx is not None:
            rows = rows[:, item_idx.cpu().numpy().copy()].tocsr()
        device = self.embedding.weight.device
        r = torch.from_numpy(np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))).to(device)
        c = torch.from_numpy(rows.indices.astype(np.int64)).to(device)
        return r, c, torch.from_numpy(rows.data.astype(np.float32)).to(device)

    def add_support(self, scores: Tensor, user_idx: Tensor, item_idx: Tensor | None = None) -> Tensor:
        """``scores`` ``[n, m]`` plus ``support_weight x`` the social support of users ``[n]`` for
        items ``[m]`` (all items when None), added over the support's non-zeros only (no dense
        ``[n, m]`` support block); out of place, so the weight gets its gradient."""
        r, c, vals = self.support_block(user_idx, item_idx)
        return scores.index_put((r.to(scores.device), c.to(scores.device)), self.support_weight * vals.to(scores.device),
                                accumulate=True)

    def score_matrix(self, emb: Tensor, user_idx: Tensor) -> Tensor:
        """``[n, I]`` scores of users ``user_idx`` ``[n]`` against every item."""
        users, items = self.split(emb)
        u = users[user_idx]
        if not self.cosine:
            return u @ items.T
        scores = F.normalize(u, dim=-1) @ F.normalize(items, dim=-1).T / self.temperature
        if self.item_bias is not None:
            scores = scores + self.item_bias
        if self.support is not None:
            scores = self.add_support(scores, user_idx)
        return scores

    @torch.no_grad()
    def ranker(self, emb: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        """A scoring function ``[n] -> [n, I]`` equal to :meth:`score_matrix` up to float rounding,
        for ranking the whole catalogue chunk after chunk: the catalogue is normalised once, the
        bias rides on the product (one matrix product a chunk, no full-size temporaries) and the
        social support is added over its non-zeros. Each call returns a fresh tensor.

        Args:
            emb: ``[U + I, d]`` propagated embeddings (default: :meth:`get_embedding`).
        """
        users, items = self.serving_vectors(emb)

        @torch.no_grad()
        def score(user_idx: Tensor) -> Tensor:
            out = users[user_idx] @ items.T
            return out if self.support is None else self.add_support(out, user_idx)

        return score

    @torch.no_grad()
    def serving_vectors(self, emb: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(``[U, d']`` users, ``[I, d']`` items) whose dot product is :meth:`score_matrix`
        without the social-support term (serving adds ``support_weight x support`` itself):
        cosine models are normalised and scaled, the item bias rides on an extra dimension.
        ``emb``: ``[U + I, d]`` propagated embeddings (default: :meth:`get_embedding`)."""
        users, items = self.split(self.get_embedding() if emb is None else emb)
        if not self.cosine:
            return users, items
        users = F.normalize(users, dim=-1) / self.temperature
        items = F.normalize(items, dim=-1)
        if self.item_bias is not None:
            users = torch.cat([users, torch.ones(len(users), 1, device=users.device)], dim=1)
            items = torch.cat([items, self.item_bias[:, None]], dim=1)
        return users, items

    def get_embedding(self) -> Tensor:
        """``[U + I, d]`` propagated embeddings (mean over layers 0..L)."""
        x = self.embedding.weight
        if self.num_layers == 0:
            return x
        gate = self.social_gate
        social = None if gate is None else gate.values(x[: self.num_users])
        out = x
        for conv in self.convs:
            y = conv(x, self.adjacency)
            if social is not None:
                y = torch.cat([y[: self.num_users] + gate.propagate(social, x[: self.num_users]),
                               y[self.num_users:]])
            x = y
            out = out + x
        return out / (self.num_layers + 1)

    def split(self, emb: Tensor) -> tuple[Tensor, Tensor]:
        """``emb`` as (``[U, d]`` users, ``[I, d]`` items)."""
        return emb[: self.num_users], emb[self.num_users:]

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Scores ``[n]`` of the pairs ``(user_idx[k], item_idx[k])``."""
        users, items = self.split(self.get_embedding())
        u, i = users[user_idx], items[item_idx]
        if not self.cosine:
            return (u * i).sum(dim=-1)
        scores = (F.normalize(u, dim=-1) * F.normalize(i, dim=-1)).sum(dim=-1) / self.temperature
        if self.item_bias is not None:
            scores = scores + self.item_bias[item_idx]
        if self.support is not None:
            scores = scores + self.support_weight * self.support_pairs(user_idx, item_idx)
        return scores

    def recommendation_loss(self, emb: Tensor, user_idx: Tensor, pos_idx: Tensor, neg_idx: Tensor,
                            loss: str = "bpr", temperature: float = 0.2,
                            weight_decay: float = 1e-4) -> Tensor:
        """Ranking loss of one batch.

        Args:
            emb: ``[U + I, d]`` output of :meth:`get_embedding`.
            user_idx, pos_idx: ``[B]`` users and their positive items.
            neg_idx: ``[B]`` one negative per pair (``bpr``) or ``[N]`` negatives shared by the
                batch (``softmax``).
            loss: ``bpr`` (Rendle et al. 2009) or ``softmax`` (sampled softmax over the
                positive and the shared negatives, with cosine scores over ``temperature``).
            weight_decay: L2 on the layer-0 embeddings of the batch, per pair.

        Returns:
            scalar loss.
        """
        users, items = self.split(emb)
        return self.pair_loss(users[user_idx], items[pos_idx], items[neg_idx], user_idx, pos_idx,
                              neg_idx, loss, temperature, weight_decay)

    def pair_loss(self, u: Tensor, p: Tensor, n: Tensor, user_idx: Tensor, pos_idx: Tensor,
                  neg_idx: Tensor, loss: str = "bpr", temperature: float = 0.2,
                  weight_decay: float = 1e-4) -> Tensor:
        """:meth:`recommendation_loss` from the batch's propagated embeddings: users ``u`` and
        positives ``p`` ``[B, d]``, negatives ``n`` ``[B or N, d]``, with their indices."""
        if loss == "bpr":
            main = -F.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
        elif loss == "softmax":
            u, p, n = F.normalize(u, dim=-1), F.normalize(p, dim=-1), F.normalize(n, dim=-1)
            pos = self.pair_scores(u, p, user_idx, pos_idx, temperature)[:, None]
            neg = u @ n.T / temperature
            if self.item_bias is not None:
                neg = neg + self.item_bias[neg_idx][None, :]
            if self.support is not None:
                neg = self.add_support(neg, user_idx, neg_idx)
            logits = torch.cat([pos, neg], dim=1)
            main = F.cross_entropy(logits, torch.zeros(len(u), dtype=torch.long, device=u.device))
        else:
            raise ValueError(f"unknown loss {loss!r}; expected 'bpr' or 'softmax'")
        reg = (self.embedding(user_idx).pow(2).sum() + self.embedding(self.num_users + pos_idx).pow(2).sum()
               + self.embedding(self.num_users + neg_idx).pow(2).sum()) / (2 * len(user_idx))
        return main + weight_decay * reg

    def multinomial_loss(self, emb: Tensor, user_idx: Tensor, rows: Tensor, cols: Tensor,
                         temperature: float = 0.15, weight_decay: float = 1e-4,
                         sample: Tensor | None = None) -> Tensor:
        """Full-softmax (multinomial) loss of a batch of users against the whole catalogue.

        Each user's scores over every item (cosine over ``temperature``, plus the item bias and the
        social-support term when the model has them) go through one softmax; the loss is minus the
        mean log-probability of the batch's positives (each (user, item) pair weighs the same, so a
        heavy user weighs more, as in a pair loss; weighing users equally lost 22 % recall@20 on a
        Yelp validation carve, experiments/LOG.md). One propagation serves
        the whole batch, and no negative is sampled. With ``sample``, a catalogue too large for one
        ``[B, I]`` score block is stood in for by those items, shared by the batch: each positive's
        log-probability is taken against itself and the sample (a sampled softmax, uniform
        proposal, so no correction term).

        Args:
            emb: ``[U + I, d]`` output of :meth:`get_embedding`.
            user_idx: ``[B]`` users.
            rows, cols: ``[P]`` the positives: user ``user_idx[rows[p]]`` engaged with item ``cols[p]``.
            temperature: softmax temperature.
            weight_decay: L2 on the layer-0 embeddings of each positive pair's user and item, per pair.
            sample: ``[S]`` item indices standing in for the catalogue (None: every item).
        """
        # The rows are gathered by one index_select: its backward is a single index_add into
        # one [U + I, d] buffer, about three times quicker on CPU than advanced indexing's
        # accumulating index_put, and one buffer instead of one per slice and gather.
        num_u = self.num_users
        parts = [user_idx, num_u + cols] + ([] if sample is None else [num_u + sample])
        index = torch.cat(parts)
        gathered = emb.index_select(0, index).split([len(p) for p in parts])
        u = F.normalize(gathered[0], dim=-1)                                                      # [B, d]
        cand = F.normalize(emb[num_u:] if sample is None else gathered[2], dim=-1)                 # [S, d]
        bias = None
        if self.item_bias is not None:
            bias = self.item_bias if sample is None else self.item_bias.index_select(0, sample)
        term = None
        if self.support is not None:
            term = SparseTerm(*self.support_block(user_idx, sample), self.support_weight)
        # The [B, S] score block is never held whole (catalogue_lse.py).
        lse = catalogue_logsumexp(u / temperature, cand, bias, term).index_select(0, rows)        # [P]
        pos = self.pair_scores(u.index_select(0, rows), gathered[1], user_idx[rows], cols, temperature)  # [P]
        picked = pos - (lse if sample is None else torch.logaddexp(pos, lse))
        main = -picked.mean()
        # Per pair: each user's squared norm counts once per positive.
        base_u, base_i = self.embedding.weight.index_select(0, index[: len(user_idx) + len(cols)]).split([len(user_idx), len(cols)])
        per_user = torch.bincount(rows, minlength=len(user_idx)).to(base_u.dtype)
        reg = ((per_user * base_u.pow(2).sum(1)).sum() + base_i.pow(2).sum()) / (2 * len(rows))
        return main + weight_decay * reg

    def pair_scores(self, u: Tensor, i: Tensor, user_idx: Tensor, item_idx: Tensor, temperature: float) -> Tensor:
        """``[P]`` cosine scores of normalised users ``u [P, d]`` with items ``i [P, d]``, plus the
        item bias and social support: the positive side of the softmax and sampled multinomial
        losses (the same terms as :meth:`score_matrix`)."""
        scores = (u * F.normalize(i, dim=-1)).sum(-1) / temperature
        if self.item_bias is not None:
            scores = scores + self.item_bias.index_select(0, item_idx)
        if self.support is not None:
            scores = scores + self.support_weight * self.support_pairs(user_idx, item_idx)
        return scores

    @torch.no_grad()
    def recommend(self, user_idx: Tensor, k: int, exclude: list[Tensor] | None = None) -> Tensor:
        """Top-``k`` item indices ``[n, k]`` for ``user_idx`` ``[n]``, leaving out ``exclude[j]``
        (item indices already consumed by user ``j``)."""
        scores = self.score_matrix(self.get_embedding(), user_idx)
        if exclude is not None:
            for row, seen in enumerate(exclude):
                scores[row, seen] = -torch.inf
        return torch.topk(scores, min(k, self.num_items), dim=1).indices
