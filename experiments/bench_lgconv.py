"""PyG's ``LGConv(normalize=False)`` as it ships vs guanxi's ``SymmetricLGConv``, on the same CSR adjacency.

    .venv/bin/python experiments/bench_lgconv.py [--data lastfm-sociallgn .worlds/world-10000-s0] [--reps 10]

Both propagate 3 layers over the normalised ``torch.sparse`` CSR adjacency that training builds
(``prepare``): PyG's layer through its own sparse path (``spmm`` of the adjacency it is given),
ours through an autograd op that uses the adjacency's symmetry in the backward pass (``A^T = A``: no
transpose of the CSR). Forward + backward of the summed output, alternating, median of ``--reps``;
the outputs are checked equal first. Writes experiments/results/bench_lgconv.json, prints a table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.nn import LGConv

from guanxi.features.datasets import load_dataset
from guanxi.training.config import load_config
from guanxi.training.model import SymmetricLGConv
from guanxi.training.train import prepare

OUT = Path(__file__).parent / "results" / "bench_lgconv.json"


def _propagate(layers: list, x0: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    x = x0
    for layer in layers:
        x = layer(x, adj)
    return x


def bench(name: str, reps: int, dim: int) -> dict:
    prep = prepare(load_dataset(name), load_config())
    adj = prep.adjacency
    torch.manual_seed(0)
    x0 = torch.randn(adj.shape[0], dim, requires_grad=True)
    pyg = [LGConv(normalize=False) for _ in range(3)]
    ours = [SymmetricLGConv() for _ in range(3)]
    same = torch.allclose(_propagate(pyg, x0, adj), _propagate(ours, x0, adj), atol=1e-5)
    times: dict[str, list[float]] = {"pyg": [], "ours": []}
    for _ in range(reps + 1):                       # the first round warms up and is dropped
        for label, layers in (("pyg", pyg), ("ours", ours)):
            x0.grad = None
            start = time.perf_counter()
            _propagate(layers, x0, adj).sum().backward()
            times[label].append(time.perf_counter() - start)
    pyg_ms, ours_ms = (1000 * statistics.median(times[k][1:]) for k in ("pyg", "ours"))
    return {"dataset": name, "nodes": int(adj.shape[0]), "nnz": int(adj._nnz()), "dim": dim,
            "outputs_equal": bool(same), "pyg_lgconv_ms": pyg_ms, "symmetric_lgconv_ms": ours_ms,
            "ratio": pyg_ms / ours_ms, "threads": torch.get_num_threads(), "reps": reps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["lastfm-sociallgn", ".worlds/world-10000-s0"])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--dim", type=int, default=load_config().dim)
    args = parser.parse_args()
    rows = [bench(name, args.reps, args.dim) for name in args.data]
    OUT.write_text(json.dumps(rows, indent=2))
    print("| dataset | nodes | nnz | dim | PyG LGConv fwd+bwd ms | SymmetricLGConv ms | PyG / ours | same output |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['nodes']:,} | {r['nnz']:,} | {r['dim']} | {r['pyg_lgconv_ms']:.1f} | "
              f"{r['symmetric_lgconv_ms']:.1f} | {r['ratio']:.2f}x | {r['outputs_equal']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
