"""GPU vs CPU time per training step and epoch for guanxi (run on a lent GPU machine).

    PYTHONPATH=. python3 experiments/bench_gpu.py --out DIR

No MLflow needed: it uses the training core only. For LastFM (SocialLGN split, from
experiments/splits) and a generated world it measures the median time of one training step
(propagation + loss + backward + Adam; 5 warm-up steps, then 30 timed) on each device, and the
time per epoch (median of 3 epochs) where an epoch is cheap enough; then a short full training on
CUDA to show the result is the same kind of model. Writes DIR/bench_gpu.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from guanxi.features.datasets import load_dataset
from guanxi.features.world import WorldConfig, generate_world
from guanxi.training.config import load_config
from guanxi.training.model import GraphRecommender
from guanxi.training.train import prepare, train


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_times(prep, config, device: torch.device, steps: int = 30) -> dict:
    torch.manual_seed(0)
    adj = prep.adjacency.to(device)
    model = GraphRecommender(prep.idmap.num_users, prep.idmap.num_items, config.dim, config.layers,
                             adj, cosine=True, temperature=config.temperature,
                             item_bias=config.item_bias, support=prep.support).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    users = torch.from_numpy(prep.pair_user)
    items = torch.from_numpy(prep.pair_item)
    gen = torch.Generator().manual_seed(0)
    times = []
    for k in range(steps + 5):
        idx = torch.randint(0, len(users), (config.batch_size,), generator=gen)
        neg = torch.randint(0, prep.idmap.num_items, (config.negatives,), generator=gen)
        _sync(device)
        start = time.perf_counter()
        loss = model.recommendation_loss(model.get_embedding(), users[idx].to(device), items[idx].to(device),
                                         neg.to(device), "softmax", config.temperature, config.weight_decay)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        if k >= 5:
            times.append(time.perf_counter() - start)
    per_step = statistics.median(times)
    n_steps = int(np.ceil(len(users) / config.batch_size))
    return {"device": str(device), "step_ms_median": 1000 * per_step, "steps_per_epoch": n_steps,
            "epoch_s_from_steps": per_step * n_steps}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--world-users", type=int, default=100_000)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(info, flush=True)
    config = load_config()
    rows = []
    world_dir = out / "world"
    from guanxi.features.world_io import write_world
    start = time.perf_counter()
    write_world(generate_world(WorldConfig(users=args.world_users, seed=0)), world_dir)
    info["world_generate_s"] = time.perf_counter() - start
    for name in ("lastfm-sociallgn", str(world_dir)):
        ds = load_dataset(name)
        start = time.perf_counter()
        prep = prepare(ds, config)
        row = {"dataset": ds.name, "pairs": int(len(prep.pair_user)), "nodes": prep.idmap.num_users + prep.idmap.num_items,
               "adjacency_nnz": int(prep.adjacency._nnz()), "prepare_s": time.perf_counter() - start}
        for dev in ("cuda", "cpu"):
            if dev == "cuda" and not torch.cuda.is_available():
                continue
            row[dev] = step_times(prep, config, torch.device(dev))
            print(row["dataset"], dev, row[dev], flush=True)
        if "cuda" in row:
            row["step_speedup_cuda_vs_cpu"] = row["cpu"]["step_ms_median"] / row["cuda"]["step_ms_median"]
        rows.append(row)
        (out / "bench_gpu.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    if torch.cuda.is_available():
        ds = load_dataset("lastfm-sociallgn")
        res = train(ds, load_config(None, ["device=cuda"]), progress=False)
        per_epoch = [b["seconds"] - a["seconds"] for a, b in zip(res.history, res.history[1:])]
        info["lastfm_cuda_full_training"] = {
            "recall_at_20": res.metrics["recall_at_20"], "ndcg_at_20": res.metrics["ndcg_at_20"],
            "epochs": res.epochs, "best_epoch": res.best_epoch, "train_seconds": res.train_seconds,
            "epoch_s_median": statistics.median(per_epoch) if per_epoch else None}
        print(info["lastfm_cuda_full_training"], flush=True)
    (out / "bench_gpu.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
