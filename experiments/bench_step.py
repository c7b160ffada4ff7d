"""One multinomial training step of the default guanxi model: the former autograd path against today's.

    .venv/bin/python experiments/bench_step.py [--data .worlds/world-100000-s0 lastfm] [--steps 12]

*before* propagates with ``torch.sparse.mm`` and builds the step's ``[B, S]`` score block with
autograd ops (what training did until the step was reworked); *after* is the code as it is:
products written straight into their output (``sparse_dense_mm``) and the log-sum-exp over the
catalogue a block of rows at a time (``catalogue_lse.py``). Both train a model from the same
start on the same batches, steps alternating, and the first step's losses are checked equal
(float rounding). Prints and writes experiments/results/bench_step.json: median seconds a step,
after / before, and the after step's seconds by block size (``--blocks``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from guanxi.features.datasets import load_dataset
from guanxi.training import catalogue_lse
from guanxi.training import model as model_module
from guanxi.training.config import load_config
from guanxi.training.model import GraphRecommender
from guanxi.training.train import _user_batch, prepare

OUT = Path(__file__).parent / "results" / "bench_step.json"


def _before_loss(m: GraphRecommender, emb, user_idx, rows, cols, temperature, weight_decay, sample):
    """The multinomial loss as autograd ops over the whole ``[B, S]`` block (the former code)."""
    users, items = m.split(emb)
    u = F.normalize(users[user_idx], dim=-1)
    cand = F.normalize(items if sample is None else items[sample], dim=-1)
    if m.item_bias is not None:
        bias = m.item_bias if sample is None else m.item_bias[sample]
        logits = torch.addmm(bias, u / temperature, cand.T)
    else:
        logits = (u / temperature) @ cand.T
    if m.support is not None:
        logits = m.add_support(logits, user_idx, sample)
    if sample is None:
        picked = F.log_softmax(logits, dim=1)[rows, cols]
    else:
        pos = m.pair_scores(u[rows], items[cols], user_idx[rows], cols, temperature)
        picked = pos - torch.logaddexp(pos, torch.logsumexp(logits, dim=1)[rows])
    reg = (m.embedding(user_idx[rows]).pow(2).sum() + m.embedding(m.num_users + cols).pow(2).sum()) / (2 * len(rows))
    return -picked.mean() + weight_decay * reg


def _sparse_mm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.sparse.mm(adj, x)


def bench(name: str, steps: int, blocks: list[int]) -> dict:
    config = load_config()
    prep = prepare(load_dataset(name), config)
    active = np.flatnonzero(np.diff(prep.train_csr.indptr) > 0)
    batch = config.users_per_step(len(active))
    n_sample = config.items_per_step(batch, prep.idmap.num_items)
    variants = ["before", "after"] + [f"after@{b}" for b in blocks]
    models, opts = {}, {}
    for v in variants:
        torch.manual_seed(config.seed)
        models[v] = GraphRecommender(prep.idmap.num_users, prep.idmap.num_items, config.dim, config.layers,
                                     prep.adjacency, cosine=True, temperature=config.temperature,
                                     item_bias=config.item_bias, support=prep.support)
        opts[v] = torch.optim.Adam(models[v].parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    seconds = {v: [] for v in variants}
    first = {}
    fast_mm, fast_lse = model_module.sparse_dense_mm, model_module.catalogue_logsumexp
    for step in range(steps + 1):                                            # step 0 warms up
        picked = active[torch.randperm(len(active), generator=gen)[:batch].numpy()]
        users, rows, cols = _user_batch(prep.train_csr, picked)
        sample = None if n_sample == prep.idmap.num_items else torch.randperm(prep.idmap.num_items, generator=gen)[:n_sample]
        for v in variants:
            m = models[v]
            start = time.perf_counter()
            if v == "before":
                model_module.sparse_dense_mm = _sparse_mm
                loss = _before_loss(m, m.get_embedding(), users, rows, cols, config.temperature,
                                    config.weight_decay, sample)
            else:
                if "@" in v:
                    size = int(v.split("@")[1])
                    model_module.catalogue_logsumexp = lambda *a, **k: catalogue_lse.catalogue_logsumexp(*a, **k, block_scores=size)
                loss = m.multinomial_loss(m.get_embedding(), users, rows, cols, config.temperature,
                                          config.weight_decay, sample)
            opts[v].zero_grad()
            loss.backward()
            opts[v].step()
            model_module.sparse_dense_mm, model_module.catalogue_logsumexp = fast_mm, fast_lse
            if step == 0:
                first[v] = loss.item()
            else:
                seconds[v].append(time.perf_counter() - start)
    ref = first["before"]
    for v, value in first.items():
        if abs(value - ref) > 1e-4 * abs(ref):
            raise AssertionError(f"{name}: first-step loss {value} ({v}) != {ref} (before)")
    med = {v: statistics.median(s) for v, s in seconds.items()}
    return {"data": name, "users_per_step": batch, "items_scored": n_sample,
            "adjacency_nnz": int(prep.adjacency.values().numel()), "steps": steps,
            "first_step_loss": first, "median_step_s": med,
            "after_over_before": med["after"] / med["before"],
            "block_scores_default": catalogue_lse.BLOCK_SCORES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[".worlds/world-100000-s0", "lastfm"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--blocks", type=int, nargs="*", default=[2**16, 2**18, 2**22])
    args = parser.parse_args()
    rows = [bench(name, args.steps, args.blocks) for name in args.data]
    print(f"{'data':32} {'B x S':>14} {'before s':>9} {'after s':>8} {'ratio':>6}  after by block size")
    for r in rows:
        by_block = "  ".join(f"{k.split('@')[1]}:{v:.3f}" for k, v in r["median_step_s"].items() if "@" in k)
        print(f"{r['data']:32} {r['users_per_step']:>6} x {r['items_scored']:<6} {r['median_step_s']['before']:9.3f} "
              f"{r['median_step_s']['after']:8.3f} {r['after_over_before']:6.2f}  {by_block}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"torch_threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
