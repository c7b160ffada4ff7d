"""Seconds to the best validation recall with the defaults, guanxi beside `ease` and `lightgcn-s`.

    .venv/bin/python experiments/bench_converge.py [--sets lastfm split-500k world-100k]
        [--models guanxi ease lightgcn-s] [--cap SET:MODEL=SECONDS ...] [--epoch-1m]

For each data set, each model runs as one `guanxi train --no-track` with the package defaults, one
after another in this process's run (so the rows share the machine's state). A row records the
training seconds (validation included, the final test evaluation excluded), the seconds to the best
validation recall@20, how the run stopped (``early_stopping`` = on its own; ``time_budget`` = the
cap), epochs, test recall/ndcg@20, and the share of CPU time the host stole during the row.
``--cap`` sets a row's ``time_budget`` (a compute cap, said so in the output) for a baseline too
slow to wait out.

The sets: ``lastfm`` (the named set), ``split-500k`` (a split directory of ~500k training
interactions, 20k users, 50k items, 750k ties: a world with the sizes turned up, written without
its validation split and pair events, so validation is carved from train and tie strength is
learnt from co-engagement as for a published split) and ``world-100k`` (a 100,000-user world, 1.8M
training pairs). ``--epoch-1m`` also times multinomial steps on a 1,000,000-user world (read as
codes) and gives the epoch as its steps plus one validation pass (timed on 1 % of the validation
users, scaled up): over every validation user (``epoch_seconds``) and over early stopping's sample
of ``valid_max_users`` (``training_epoch_seconds``, what ``guanxi train`` spends an epoch);
``--sets --epoch-1m`` runs that alone.

Writes experiments/results/bench_converge.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "bench_converge.json"
GUANXI = str(ROOT / ".venv" / "bin" / "guanxi")


def split_500k(out: Path) -> Path:
    """The 500k-interaction bench split directory (generated once into ``out``)."""
    from guanxi.features.load_split import write_split_dir
    from guanxi.features.schema import empty_events, empty_pair_events
    from guanxi.features.world import WorldConfig, generate_world

    if not (out / "train.tsv").is_file():
        config = WorldConfig(users=20_000, seed=0, content_per_user=2.5, events_per_user=41.7,
                             ties_per_user=(8, 16, 24, 20))
        ds = generate_world(config).dataset
        write_split_dir(replace(ds, valid=empty_events(), pair_events=empty_pair_events()), out)
    return out


def world(users: int) -> Path:
    out = ROOT / ".worlds" / f"world-{users}-s0"
    if not (out / "world.json").is_file():
        subprocess.run([GUANXI, "world", "--users", str(users), "--seed", "0", "--out", str(out)], check=True)
    return out


def data_for(name: str) -> str:
    if name == "lastfm":
        return "lastfm"
    if name == "split-500k":
        return str(split_500k(ROOT / ".worlds" / "split-500k"))
    if name == "world-100k":
        return str(world(100_000))
    raise SystemExit(f"unknown set {name!r}; expected lastfm, split-500k or world-100k")


def cpu_times() -> list[int]:
    """The machine's aggregate CPU counters (``/proc/stat``; empty where there is none)."""
    stat = Path("/proc/stat")
    return [int(x) for x in stat.read_text().split("\n")[0].split()[1:]] if stat.is_file() else []


def steal_share(before: list[int], after: list[int]) -> float | None:
    """Share of CPU time the hypervisor took from this machine between two readings (a shared
    host slows every row it steals from; recorded so that slow rows can be read as such)."""
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after)]
    return round(delta[7] / max(sum(delta[:8]), 1), 3)


def run_row(set_name: str, data: str, model: str, cap: float | None) -> dict:
    metrics = ROOT / ".worlds" / f"converge-{set_name}-{model}.json"
    cmd = [GUANXI, "train", "--data", data, "--model", model, "--no-track", "--no-progress",
           "--metrics-json", str(metrics)]
    if cap is not None:
        cmd += ["--set", f"time_budget={cap:g}"]
    print(f"{set_name} / {model}: {' '.join(cmd[1:])}", flush=True)
    start, cpu = time.perf_counter(), cpu_times()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    steal = steal_share(cpu, cpu_times())
    m = json.loads(metrics.read_text())
    row = {"set": set_name, "model": model, "train_seconds": m["train_seconds"],
           "seconds_to_best": m.get("seconds_to_best"), "stopped": m.get("stopped"), "epochs": m["epochs"],
           "best_epoch": m.get("best_epoch"), "recall_at_20": m["recall_at_20"], "ndcg_at_20": m["ndcg_at_20"],
           "valid_recall_at_20": m["valid"]["recall_at_20"], "wall_seconds": round(wall, 1),
           "cap_seconds": cap, "cpu_steal": steal, "history": m.get("history")}
    print(f"  -> {row['stopped']} after {row['train_seconds']:.0f} s, best at {row['seconds_to_best']} s "
          f"(epoch {row['best_epoch']}), recall@20 {row['recall_at_20']:.4f}, CPU steal {steal}", flush=True)
    return row


def epoch_1m(steps: int = 4, valid_share: float = 0.01) -> dict:
    """Median multinomial step on a 1M-user world, times the steps of an epoch, plus one validation
    pass: timed on a seeded ``valid_share`` of the validation users and scaled up linearly (the
    full pass ranks 825k items for each of ~1M users; its cost is linear in the users ranked)."""
    import resource

    import numpy as np
    import torch

    from guanxi.features.datasets import load_coded
    from guanxi.training.config import load_config
    from guanxi.training.distributed import BatchLoss
    from guanxi.training.evaluate import evaluate_ranking
    from guanxi.training.model import GraphRecommender
    from guanxi.training.train import _user_batch, make_scorers, prepare

    data = world(1_000_000)
    config = load_config()
    t = time.perf_counter()
    prep = prepare(load_coded(data), config)          # codes straight from Parquet
    prepare_s = time.perf_counter() - t
    prepare_peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    model = GraphRecommender(prep.idmap.num_users, prep.idmap.num_items, config.dim, config.layers,
                             prep.adjacency, cosine=True, temperature=config.temperature,
                             item_bias=config.item_bias, support=prep.support)
    loss_fn = BatchLoss(model, "multinomial", config.temperature, config.weight_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    active = np.flatnonzero(np.diff(prep.train_csr.indptr) > 0)
    batch = config.users_per_step(len(active))
    n_sample = config.items_per_step(batch, prep.idmap.num_items)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        idx = torch.randperm(len(active), generator=gen)[:batch].numpy()
        users, rows, cols = _user_batch(prep.train_csr, active[idx])
        sample = torch.randperm(prep.idmap.num_items, generator=gen)[:n_sample]
        loss = loss_fn(users, rows, cols, None if n_sample == prep.idmap.num_items else sample)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    task = prep.valid_task
    users = np.unique(task.test_user)
    picked = np.random.default_rng(0).choice(users, max(1, int(valid_share * len(users))), replace=False)
    keep = np.isin(task.test_user, picked)
    start = time.perf_counter()
    score, fallback = make_scorers(model, prep, True)
    evaluate_ranking(score, replace(task, test_user=task.test_user[keep], test_item=task.test_item[keep]),
                     fallback, breakdowns=False)
    sample_s = time.perf_counter() - start
    valid_s = sample_s * len(users) / len(picked)
    step = statistics.median(times)
    steps_per_epoch = -(-len(active) // batch)
    # what training's epoch ranks: early stopping's sample of validation users, same linear scaling
    sampled = min(config.valid_max_users, len(users)) if config.valid_max_users else len(users)
    sampled_s = sample_s * sampled / len(picked)
    return {"users": prep.idmap.num_users, "items": prep.idmap.num_items, "train_pairs": int(prep.train_csr.nnz),
            "users_per_step": batch, "items_per_step": n_sample, "steps_per_epoch": steps_per_epoch,
            "step_seconds": [round(x, 2) for x in times], "median_step_seconds": round(step, 2),
            "validation_seconds": round(valid_s, 1), "validation_users_timed": int(len(picked)),
            "validation_users": int(len(users)), "validation_sample_seconds": round(sample_s, 1),
            "prepare_seconds": round(prepare_s, 1), "prepare_peak_rss_gb": round(prepare_peak_gb, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1),
            "epoch_seconds": round(steps_per_epoch * step + valid_s, 1),
            "early_stopping_validation_users": int(sampled),
            "early_stopping_validation_seconds": round(sampled_s, 1),
            "training_epoch_seconds": round(steps_per_epoch * step + sampled_s, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=["lastfm", "split-500k", "world-100k"],
                        help="data sets to run (none: `--sets --epoch-1m` times the 1M epoch only)")
    parser.add_argument("--models", nargs="+", default=["guanxi", "ease", "lightgcn-s"])
    parser.add_argument("--cap", nargs="*", default=[], help="SET:MODEL=SECONDS time budgets (compute caps)")
    parser.add_argument("--epoch-1m", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    caps = {}
    for item in args.cap:
        key, _, value = item.partition("=")
        caps[key] = float(value)
    result = json.loads(OUT.read_text()) if OUT.is_file() else {"rows": []}
    for set_name in args.sets:
        data = data_for(set_name)
        for model in args.models:
            row = run_row(set_name, data, model, caps.get(f"{set_name}:{model}"))
            result["rows"] = [r for r in result["rows"] if (r["set"], r["model"]) != (set_name, model)] + [row]
            OUT.write_text(json.dumps(result, indent=2))
    if args.epoch_1m:
        result["epoch_1m"] = epoch_1m()
        OUT.write_text(json.dumps(result, indent=2))
    print("| set | model | seconds to best | training seconds | stopped | epochs | recall@20 | ndcg@20 |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| {r['set']} | {r['model']} | {r['seconds_to_best']} | {r['train_seconds']:.0f} | {r['stopped']}"
              f"{' (cap %gs)' % r['cap_seconds'] if r.get('cap_seconds') else ''} | {r['epochs']} "
              f"| {r['recall_at_20']:.4f} | {r['ndcg_at_20']:.4f} |")
    if "epoch_1m" in result:
        print(json.dumps(result["epoch_1m"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
