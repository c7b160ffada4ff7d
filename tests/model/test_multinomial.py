"""The multinomial (user-batch, full-catalogue softmax) loss and how a step is sized."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from guanxi.training.config import TrainConfig
from guanxi.training.model import GraphRecommender


def _model(support: sp.csr_matrix | None = None) -> GraphRecommender:
    torch.manual_seed(0)
    model = GraphRecommender(5, 12, dim=8, num_layers=0, cosine=True, temperature=0.2, item_bias=True,
                             support=support)
    with torch.no_grad():
        model.item_bias.copy_(torch.linspace(-1, 1, 12))
        if model.support_weight is not None:
            model.support_weight.fill_(0.7)
    return model


def _reference(model: GraphRecommender, users: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
               candidates: torch.Tensor | None) -> torch.Tensor:
    """Mean log-probability over the positive pairs, one at a time, written out without batching."""
    full = model.score_matrix(model.get_embedding(), users)                   # [B, I]
    logps = []
    for r, c in zip(rows.tolist(), cols.tolist()):
        pool = torch.arange(model.num_items) if candidates is None else torch.cat([torch.tensor([c]), candidates])
        logps.append(full[r, c] - torch.logsumexp(full[r, pool], dim=0))
    return -torch.stack(logps).mean()


def test_full_loss_is_minus_the_mean_log_softmax_over_the_positive_pairs():
    model = _model()
    users, rows, cols = torch.tensor([0, 3, 4]), torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 5, 2, 0, 7, 11])
    got = model.multinomial_loss(model.get_embedding(), users, rows, cols, 0.2, weight_decay=0.0)
    assert got.item() == pytest.approx(_reference(model, users, rows, cols, None).item(), rel=1e-5)


def test_sampled_loss_scores_each_positive_against_itself_and_the_shared_sample():
    support = sp.random(5, 12, density=0.4, random_state=1, format="csr", dtype=np.float64)
    model = _model(support)
    users, rows, cols = torch.tensor([1, 2]), torch.tensor([0, 1, 1]), torch.tensor([3, 4, 9])
    sample = torch.tensor([0, 2, 6, 8, 10])                                  # holds no positive
    got = model.multinomial_loss(model.get_embedding(), users, rows, cols, 0.2, weight_decay=0.0, sample=sample)
    assert got.item() == pytest.approx(_reference(model, users, rows, cols, sample).item(), rel=1e-5)


def test_sampled_loss_trains_the_sampled_items_and_positives():
    model = _model()
    users, rows, cols = torch.tensor([0]), torch.tensor([0]), torch.tensor([3])
    loss = model.multinomial_loss(model.get_embedding(), users, rows, cols, 0.2, sample=torch.tensor([5, 6]))
    loss.backward()
    touched = model.embedding.weight.grad.abs().sum(1).nonzero().ravel().tolist()
    assert touched == [0, 5 + 3, 5 + 5, 5 + 6]                               # the user, its positive, the sample


def test_a_step_is_a_sixteenth_of_the_users_and_the_catalogue_is_sampled_only_when_too_large():
    config = TrainConfig()
    assert config.resolved_loss == "multinomial"
    assert config.users_per_step(1892) == 119
    assert config.users_per_step(100) == 32                                  # at least 32
    assert TrainConfig(user_batch=7).users_per_step(10_000) == 7
    assert TrainConfig().items_per_step(119, 17_632) == 17_632                 # 2.1M scores: the whole catalogue
    assert TrainConfig().items_per_step(1_247, 50_500) == 2**25 // 1_247       # 63M would be: a shared sample
    assert TrainConfig().items_per_step(62_500, 825_000) == 1_024              # never fewer than 1,024
    assert TrainConfig(sample_items=1_000).items_per_step(119, 17_632) == 1_000


def test_fanouts_resolve_to_a_pair_loss_and_an_explicit_multinomial_with_fanouts_is_refused():
    assert TrainConfig(fanouts="5,5,5").resolved_loss == "softmax"
    assert TrainConfig(model="lightgcn").resolved_loss == "bpr"
    with pytest.raises(ValueError, match="fanouts"):
        TrainConfig(fanouts="5,5,5", loss="multinomial")


def test_full_loss_gradient_matches_autograd_of_the_dense_log_softmax():
    model = _model()
    users, rows, cols = torch.tensor([2]), torch.tensor([0, 0]), torch.tensor([1, 4])
    emb = model.get_embedding()
    loss = model.multinomial_loss(emb, users, rows, cols, 0.2, weight_decay=0.0)
    logits = model.score_matrix(emb, users)
    ref = -F.log_softmax(logits, dim=1)[0, [1, 4]].mean()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_a_heavy_user_weighs_by_its_pairs():
    """Three positives of one user and one of another: the first user holds 3/4 of the loss."""
    model = _model()
    users, rows, cols = torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1]), torch.tensor([1, 2, 3, 4])
    logp = F.log_softmax(model.score_matrix(model.get_embedding(), users), dim=1)
    ref = -(logp[0, 1] + logp[0, 2] + logp[0, 3] + logp[1, 4]) / 4
    got = model.multinomial_loss(model.get_embedding(), users, rows, cols, 0.2, weight_decay=0.0)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("sample", [None, torch.tensor([0, 2, 6, 8, 10])])
def test_every_parameter_gets_the_reference_gradient_with_the_support_added_sparsely(sample):
    support = sp.random(5, 12, density=0.4, random_state=2, format="csr", dtype=np.float64)
    model = _model(support)
    users, rows, cols = torch.tensor([1, 2, 4]), torch.tensor([0, 1, 1, 2]), torch.tensor([3, 4, 9, 1])
    model.multinomial_loss(model.get_embedding(), users, rows, cols, 0.2, weight_decay=0.0, sample=sample).backward()
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    _reference(model, users, rows, cols, sample).backward()
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, rtol=1e-4, atol=1e-6), name
    assert got["support_weight"].abs().item() > 0


def test_the_ranker_scores_as_score_matrix_does_and_hands_out_fresh_tensors():
    support = sp.random(5, 12, density=0.4, random_state=3, format="csr", dtype=np.float64)
    model = _model(support)
    users = torch.tensor([4, 0, 2])
    rank = model.ranker()
    want = model.score_matrix(model.get_embedding(), users).detach()
    first = rank(users)
    assert torch.allclose(first, want, atol=1e-5)
    first.fill_(0.0)                                                         # the ranking masks in place
    assert torch.allclose(rank(users), want, atol=1e-5)


@pytest.mark.parametrize("sample", [None, torch.tensor([0, 2, 6, 8, 10])])
def test_weight_decay_is_the_l2_of_each_positive_pairs_layer0_user_and_item(sample):
    model = _model()
    users, rows, cols = torch.tensor([0, 3, 4]), torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([1, 5, 2, 0, 7, 11])
    emb = model.get_embedding()
    plain = model.multinomial_loss(emb, users, rows, cols, 0.2, weight_decay=0.0, sample=sample)
    decayed = model.multinomial_loss(emb, users, rows, cols, 0.2, weight_decay=0.5, sample=sample)
    w = model.embedding.weight
    l2 = (w[users[rows]].pow(2).sum() + w[model.num_users + cols].pow(2).sum()) / (2 * len(rows))
    assert (decayed - plain).item() == pytest.approx(0.5 * l2.item(), rel=1e-5)
