"""Time per epoch: guanxi's CSR propagation vs PyG's own LightGCN message passing, same graph, same run.

    .venv/bin/python experiments/bench_speed.py [--data lastfm-sociallgn ciao] [--epochs 3] [--dim D ...]

For each dataset it builds the guanxi adjacency once, then measures side by side, for each
embedding size in --dim (default: the config default, then 64, the size the issue quotes)
(1) one propagation, 3 layers, forward + backward: median of 10;
(2) one training epoch at the default batch size: median of --epochs epochs,
    guanxi's GraphRecommender (SpMM over the cached CSR) vs torch_geometric.nn.models.LightGCN
    (edge_index message passing, BPR loss as PyG ships it).
Writes experiments/results/bench_speed.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.nn.models import LightGCN

from guanxi.features.datasets import load_dataset
from guanxi.training.config import TrainConfig, load_config
from guanxi.training.model import GraphRecommender
from guanxi.training.train import Prepared, prepare

OUT = Path(__file__).parent / "results" / "bench_speed.json"


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, epochs: int, dims: list[int]) -> list[dict]:
    """One row per embedding size in ``dims`` for the named dataset, prepared once."""
    config = load_config()
    prep = prepare(load_dataset(name), config)
    return [_bench_dim(name, prep, config, epochs, dim) for dim in dims]


def _bench_dim(name: str, prep: Prepared, config: TrainConfig, epochs: int, dim: int) -> dict:
    n_u, n_i = prep.idmap.num_users, prep.idmap.num_items
    adj = prep.adjacency
    coo = adj.to_sparse_coo().coalesce()
    edge_index = coo.indices()
    torch.manual_seed(0)
    ours = GraphRecommender(n_u, n_i, dim, 3, adj, cosine=True, temperature=config.temperature,
                            item_bias=config.item_bias)
    pyg = LightGCN(n_u + n_i, dim, 3)

    def prop_ours():
        ours.get_embedding().sum().backward()

    def prop_pyg():
        pyg.get_embedding(edge_index).sum().backward()

    prop_ours(), prop_pyg()  # warm-up
    t_ours = _median_time(prop_ours, 10)
    t_pyg = _median_time(prop_pyg, 10)

    users = torch.from_numpy(prep.pair_user)
    items = torch.from_numpy(prep.pair_item)
    opt_o = torch.optim.Adam(ours.parameters(), lr=config.lr)
    opt_p = torch.optim.Adam(pyg.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(0)

    def epoch_ours():
        perm = torch.randperm(len(users), generator=gen)
        for s in range(0, len(users), config.batch_size):
            idx = perm[s:s + config.batch_size]
            neg = torch.randint(0, n_i, (config.negatives,), generator=gen)
            loss = ours.recommendation_loss(ours.get_embedding(), users[idx], items[idx], neg,
                                            "softmax", config.temperature, config.weight_decay)
            opt_o.zero_grad()
            loss.backward()
            opt_o.step()

    def epoch_pyg():
        perm = torch.randperm(len(users), generator=gen)
        for s in range(0, len(users), config.batch_size):
            idx = perm[s:s + config.batch_size]
            neg = torch.randint(0, n_i, (len(idx),), generator=gen) + n_u
            src = torch.cat([users[idx], users[idx]])
            dst = torch.cat([items[idx] + n_u, neg])
            rank = pyg(edge_index, torch.stack([src, dst]))
            pos, negs = rank.chunk(2)
            loss = pyg.recommendation_loss(pos, negs, node_id=torch.unique(torch.cat([src, dst])))
            opt_p.zero_grad()
            loss.backward()
            opt_p.step()

    e_ours = _median_time(epoch_ours, epochs)
    e_pyg = _median_time(epoch_pyg, epochs)
    return {"dataset": name, "dim": dim, "nodes": n_u + n_i, "adjacency_nnz": int(adj._nnz()),
            "batch_size": config.batch_size, "steps_per_epoch": int(np.ceil(len(users) / config.batch_size)),
            "propagation_ms_guanxi": 1000 * t_ours, "propagation_ms_pyg": 1000 * t_pyg,
            "propagation_ratio": t_pyg / t_ours,
            "epoch_s_guanxi": e_ours, "epoch_s_pyg_lightgcn": e_pyg, "epoch_ratio": e_pyg / e_ours,
            "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["lastfm-sociallgn", "ciao"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, nargs="+", default=sorted({load_config().dim, 64}, reverse=True))
    args = parser.parse_args()
    rows = [row for name in args.data for row in bench(name, args.epochs, args.dim)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))
    print("| dataset | dim | nodes | adjacency nnz | propagation fwd+bwd guanxi / PyG (ms) | ratio | epoch guanxi / PyG LightGCN (s) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['dim']} | {r['nodes']:,} | {r['adjacency_nnz']:,} | {r['propagation_ms_guanxi']:.0f} / "
              f"{r['propagation_ms_pyg']:.0f} | {r['propagation_ratio']:.1f}x | {r['epoch_s_guanxi']:.1f} / "
              f"{r['epoch_s_pyg_lightgcn']:.1f} | {r['epoch_ratio']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
