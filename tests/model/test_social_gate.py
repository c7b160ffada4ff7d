"""The learnt social-edge gate: it starts as the fixed-weight model and learns from the loss."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from guanxi.training.adjacency import normalized_adjacency
from guanxi.training.config import load_config
from guanxi.training.model import GraphRecommender
from guanxi.training.social_gate import SocialGate, split_social

U, I = 6, 9


def _adjacency() -> torch.Tensor:
    rng = np.random.default_rng(0)
    pu, pi = rng.integers(0, U, 30), rng.integers(0, I, 30)
    src = np.array([0, 1, 1, 2, 3, 4, 4, 5])
    dst = np.array([1, 0, 2, 1, 4, 3, 5, 4])
    w = np.array([1.0, 1.0, 0.3, 0.3, 0.5, 0.5, 1.0, 1.0], np.float32)
    return normalized_adjacency(U, I, pu, pi, None, src, dst, w)


def _gated() -> tuple[GraphRecommender, GraphRecommender]:
    adj = _adjacency()
    rest, src, dst, val = split_social(adj, U)
    torch.manual_seed(0)
    plain = GraphRecommender(U, I, 8, 2, adj, cosine=True, temperature=0.2, item_bias=True)
    torch.manual_seed(0)
    gated = GraphRecommender(U, I, 8, 2, rest, cosine=True, temperature=0.2, item_bias=True,
                             social_gate=SocialGate(U, src, dst, val))
    return plain, gated


def test_split_social_takes_out_exactly_the_user_user_entries():
    adj = _adjacency()
    rest, src, dst, val = split_social(adj, U)
    dense = adj.to_dense()
    back = rest.to_dense()
    back[src, dst] += torch.from_numpy(val)
    assert torch.equal(back, dense)
    assert (src < U).all() and (dst < U).all() and len(src) == 8
    assert not rest.to_dense()[:U, :U].any()
    assert np.all(np.diff(src * U + dst) > 0)          # sorted, no duplicates


def test_gated_model_starts_equal_to_the_fixed_weight_model():
    plain, gated = _gated()
    assert torch.allclose(plain.get_embedding(), gated.get_embedding(), atol=1e-6)


def test_gate_parameters_get_gradients_and_move_the_social_edges():
    _, gated = _gated()
    users, rows, cols = torch.tensor([0, 2, 4]), torch.tensor([0, 1, 2, 2]), torch.tensor([1, 3, 0, 8])
    loss = gated.multinomial_loss(gated.get_embedding(), users, rows, cols, 0.2)
    loss.backward()
    gate = gated.social_gate
    assert gate.scale.grad is not None and gate.scale.grad.abs() > 0
    assert gate.bias.grad is not None and gate.bias.grad.abs() > 0
    with torch.no_grad():
        gate.bias.fill_(-30.0)                        # bounded: e^-3 at most, never zero or inf
    g = gate.gates(gated.embedding.weight[:U])
    assert torch.allclose(g, torch.full_like(g, float(np.exp(-3.0))), rtol=1e-4)
    assert "social_gate.scale" in gated.state_dict() and "social_gate.index" not in gated.state_dict()


def test_social_gate_refuses_sampled_steps():
    with pytest.raises(ValueError, match="social_gate"):
        load_config(None, ["social_gate=true", "fanouts=5,5,5", "loss=softmax"])


def test_gated_propagation_and_its_gradients_equal_a_dense_reference():
    adj = _adjacency()
    rest, src, dst, val = split_social(adj, U)
    _, gated = _gated()
    with torch.no_grad():
        gated.social_gate.scale.fill_(1.3)
        gated.social_gate.bias.fill_(-0.4)
    weights = torch.randn(U + I, 8)
    gated.get_embedding().mul(weights).sum().backward()
    got = {n: p.grad.clone() for n, p in gated.named_parameters() if p.grad is not None}

    emb = gated.embedding.weight.detach().clone().requires_grad_(True)
    scale = torch.tensor(1.3, requires_grad=True)
    bias = torch.tensor(-0.4, requires_grad=True)
    s, d = torch.from_numpy(src), torch.from_numpy(dst)
    n = torch.nn.functional.normalize(emb[:U], dim=-1)
    gate = torch.exp(3 * torch.tanh((bias + scale * (n[s] * n[d]).sum(-1)) / 3))
    social = torch.zeros(U + I, U + I).index_put((s, d), torch.from_numpy(val) * gate)
    full = rest.to_dense() + social
    x, out = emb, emb
    for _ in range(2):
        x = full @ x
        out = out + x
    (out / 3).mul(weights).sum().backward()
    assert torch.allclose(got["embedding.weight"], emb.grad, atol=1e-5)
    assert got["social_gate.scale"].item() == pytest.approx(scale.grad.item(), rel=1e-4, abs=1e-6)
    assert got["social_gate.bias"].item() == pytest.approx(bias.grad.item(), rel=1e-4, abs=1e-6)


def test_gate_refuses_entries_that_are_not_symmetric():
    with pytest.raises(ValueError, match="symmetric"):
        SocialGate(3, np.array([0, 1]), np.array([1, 2]), np.ones(2, np.float32))
