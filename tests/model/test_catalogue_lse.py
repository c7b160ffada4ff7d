"""The blockwise log-sum-exp over a catalogue equals the dense one, value and gradients."""
from __future__ import annotations

import pytest
import torch

from guanxi.training.catalogue_lse import SparseTerm, catalogue_logsumexp


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(7, 4, generator=gen, requires_grad=True)
    items = torch.randn(9, 4, generator=gen, requires_grad=True)
    bias = torch.randn(9, generator=gen, requires_grad=True)
    weight = torch.tensor(0.6, requires_grad=True)
    rows = torch.tensor([0, 0, 2, 3, 3, 3, 6])                               # sorted; rows 1, 4, 5 empty
    cols = torch.tensor([1, 8, 0, 2, 5, 8, 4])
    values = torch.rand(7, generator=gen)
    return u, items, bias, weight, rows, cols, values


def _dense(u, items, bias, weight, rows, cols, values):
    term = torch.zeros(len(u), len(items)).index_put((rows, cols), values)
    return torch.logsumexp(u @ items.T + bias + weight * term, dim=1)


@pytest.mark.parametrize("block_scores", [1, 9, 20, 10_000])             # 1 row a block .. one block
def test_value_and_every_gradient_match_the_dense_computation(block_scores):
    u, items, bias, weight, rows, cols, values = _inputs()
    upstream = torch.linspace(0.5, 2.0, len(u))                              # not all ones: weights rows
    got = catalogue_logsumexp(u, items, bias, SparseTerm(rows, cols, values, weight), block_scores=block_scores)
    (got * upstream).sum().backward()
    grads = [t.grad.clone() for t in (u, items, bias, weight)]
    for t in (u, items, bias, weight):
        t.grad = None
    want = _dense(u, items, bias, weight, rows, cols, values)
    (want * upstream).sum().backward()
    assert torch.allclose(got, want, atol=1e-6)
    for name, g, t in zip(("u", "items", "bias", "weight"), grads, (u, items, bias, weight)):
        assert torch.allclose(g, t.grad, atol=1e-5), name
    assert grads[3].abs().item() > 0


def test_without_bias_or_term_it_is_the_plain_logsumexp_of_the_products():
    u, items, *_ = _inputs(1)
    got = catalogue_logsumexp(u, items, block_scores=18)                     # two rows a block
    got.sum().backward()
    g_u, g_items = u.grad.clone(), items.grad.clone()
    u.grad = items.grad = None
    torch.logsumexp(u @ items.T, dim=1).sum().backward()
    assert torch.allclose(g_u, u.grad, atol=1e-6) and torch.allclose(g_items, items.grad, atol=1e-6)


def test_a_term_spans_its_rows_by_block():
    rows, cols, values = torch.tensor([0, 2, 2, 5]), torch.tensor([3, 1, 4, 0]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    term = SparseTerm(rows, cols, values, torch.tensor(1.0))
    r, c, v = term.span(2, 5)
    assert r.tolist() == [0, 0] and c.tolist() == [1, 4] and v.tolist() == [2.0, 3.0]
    assert [t.numel() for t in term.span(3, 5)] == [0, 0, 0]
