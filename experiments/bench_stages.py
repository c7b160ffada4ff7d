"""Wall time and peak memory per pipeline stage, by world size (experiments/scale.md).

    .venv/bin/python experiments/bench_stages.py [--users 10000 100000 300000] [--steps 10]

Each stage runs in its own process, so its peak resident memory is its own (``ru_maxrss`` of the
child): (1) `guanxi world` (generate + write Parquet), (2) `guanxi features` (load, tie strength,
circles, typed graph, adjacency), (3) training steps: `prepare` (load + features + adjacency) and
then the median time of ``--steps`` full-graph training steps at the default config (propagation
over the whole graph + sampled-softmax loss + backward + Adam). Writes
experiments/results/bench_stages.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "bench_stages.json"

STEPS = r'''
import json, statistics, sys, time
import torch
from guanxi.features.datasets import load_dataset
from guanxi.training.config import load_config
from guanxi.training.model import GraphRecommender
from guanxi.training.train import prepare
data, steps = sys.argv[1], int(sys.argv[2])
config = load_config()
t = time.perf_counter(); prep = prepare(load_dataset(data), config); t_prep = time.perf_counter() - t
model = GraphRecommender(prep.idmap.num_users, prep.idmap.num_items, config.dim, config.layers, prep.adjacency,
                         cosine=True, temperature=config.temperature, item_bias=config.item_bias, support=prep.support)
opt = torch.optim.Adam(model.parameters(), lr=config.lr)
users, items = torch.from_numpy(prep.pair_user), torch.from_numpy(prep.pair_item)
gen = torch.Generator().manual_seed(0)
times = []
for k in range(steps + 2):
    idx = torch.randint(0, len(users), (config.batch_size,), generator=gen)
    neg = torch.randint(0, prep.idmap.num_items, (config.negatives,), generator=gen)
    s = time.perf_counter()
    loss = model.recommendation_loss(model.get_embedding(), users[idx], items[idx], neg, "softmax",
                                     config.temperature, config.weight_decay)
    opt.zero_grad(); loss.backward(); opt.step()
    if k >= 2:
        times.append(time.perf_counter() - s)
print(json.dumps({"prepare_s": t_prep, "step_s": statistics.median(times), "pairs": len(users),
                  "adjacency_nnz": int(prep.adjacency._nnz()), "users": prep.idmap.num_users,
                  "items": prep.idmap.num_items}))
'''


SAMPLED = r'''
import json, statistics, sys, time
import numpy as np, torch
from guanxi.features.datasets import load_coded
from guanxi.training.config import load_config
from guanxi.training.model import GraphRecommender
from guanxi.training.sampled import SampledTrainer
from guanxi.training.train import prepare
data, steps, fanouts = sys.argv[1], int(sys.argv[2]), tuple(int(f) for f in sys.argv[3].split(","))
config = load_config()
t = time.perf_counter()
prep = prepare(load_coded(data), config)
coded, adjacency, pair_user, pair_item, support = prep.data, prep.adjacency, prep.pair_user, prep.pair_item, prep.support
t_prep = time.perf_counter() - t
torch.manual_seed(0)
model = GraphRecommender(coded.num_users, coded.num_items, config.dim, config.layers, adjacency, cosine=True,
                         temperature=config.temperature, item_bias=config.item_bias, support=support)
trainer = SampledTrainer(model, fanouts, config.lr, config.temperature, config.weight_decay)
stats = trainer.epoch(pair_user, pair_item, config.batch_size, config.negatives,
                      torch.Generator().manual_seed(0), max_steps=steps + 2)[2:]
print(json.dumps({"prepare_s": t_prep, "step_s": statistics.median(s.seconds for s in stats),
                  "loss_first": stats[0].loss, "loss_last": stats[-1].loss,
                  "nodes_per_step": statistics.median(s.nodes for s in stats),
                  "edges_per_step": statistics.median(s.edges for s in stats), "pairs": len(pair_user),
                  "adjacency_nnz": int(adjacency._nnz()), "items": coded.num_items}))
'''


# A fresh wrapper per stage: RUSAGE_CHILDREN's max RSS is then that stage's alone.
WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "sys.stderr.write('PEAK_KB %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(r.returncode)")


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GB) of the stage's process, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAP, *cmd], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {done.stderr[-2000:]}")
    peak_kb = int(done.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return wall, peak_kb / 1024 / 1024, done.stdout


def growth(rows: list[dict], key: str) -> list[float | None]:
    """Log-log slope of ``key`` between consecutive sizes: 1.0 grows linearly with users."""
    out = []
    for prev, cur in zip(rows, rows[1:]):
        if prev.get(key) and cur.get(key):
            out.append(math.log(cur[key] / prev[key]) / math.log(cur["users"] / prev["users"]))
        else:
            out.append(None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fanouts", default="15,10,5", help="sampled training: neighbours per hop")
    parser.add_argument("--full-max-users", type=int, default=300_000,
                        help="largest world that also gets full-graph steps (1M would need ~24 GB)")
    args = parser.parse_args()
    guanxi = str(Path(sys.executable).with_name("guanxi"))
    rows = []
    for n in sorted(args.users):
        out = ROOT / ".worlds" / f"stages-{n}"
        w_s, w_gb, _ = run([guanxi, "world", "--users", str(n), "--seed", "0", "--out", str(out)])
        f_s, f_gb, _ = run([guanxi, "features", "--data", str(out)])
        row = {"users": n, "world_s": w_s, "world_peak_gb": w_gb, "features_s": f_s, "features_peak_gb": f_gb}
        if n <= args.full_max_users:
            _, t_gb, stdout = run([sys.executable, "-c", STEPS, str(out), str(args.steps)])
            steps = json.loads(stdout.strip().splitlines()[-1])
            row.update({"full_prepare_s": steps["prepare_s"], "full_step_s": steps["step_s"], "full_peak_gb": t_gb})
        _, s_gb, stdout = run([sys.executable, "-c", SAMPLED, str(out), str(args.steps), args.fanouts])
        steps = json.loads(stdout.strip().splitlines()[-1])
        row.update({"sampled_prepare_s": steps["prepare_s"], "sampled_step_s": steps["step_s"],
                    "sampled_peak_gb": s_gb, "fanouts": args.fanouts, "steps": args.steps,
                    **{k: steps[k] for k in ("pairs", "adjacency_nnz", "items", "nodes_per_step",
                                             "edges_per_step", "loss_first", "loss_last")}})
        rows.append(row)
        print(json.dumps(row), flush=True)
    OUT.write_text(json.dumps(rows, indent=2))
    print("| users | items | training pairs | world (gen + write) | features | full graph: prepare / step | "
          "sampled: prepare / step | peak RSS world / features / full / sampled |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        full = (f"{r['full_prepare_s']:.0f} s / {r['full_step_s'] * 1000:.0f} ms" if "full_step_s" in r else "not run")
        full_gb = f"{r['full_peak_gb']:.1f}" if "full_peak_gb" in r else "-"
        print(f"| {r['users']:,} | {r['items']:,} | {r['pairs']:,} | {r['world_s']:.0f} s | {r['features_s']:.0f} s | "
              f"{full} | {r['sampled_prepare_s']:.0f} s / {r['sampled_step_s'] * 1000:.0f} ms | "
              f"{r['world_peak_gb']:.1f} / {r['features_peak_gb']:.1f} / {full_gb} / {r['sampled_peak_gb']:.1f} GB |")
    keys = ("world_s", "world_peak_gb", "features_s", "features_peak_gb", "sampled_prepare_s",
            "sampled_step_s", "sampled_peak_gb")
    print("growth (log-log slope per size step):",
          json.dumps({k: [round(g, 2) if g is not None else None for g in growth(rows, k)] for k in keys}))


if __name__ == "__main__":
    main()
