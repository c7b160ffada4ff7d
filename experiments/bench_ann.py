"""Serving at catalogue scale: exact scoring vs the ANN index, at 100k and 1M items.

    .venv/bin/python experiments/bench_ann.py [--queries 500] [--seconds 10]

Catalogues: the 100k-item bundle trained by experiments/bench_serving.py (.bench), and a 1M-item
catalogue made from it: its 100k content vectors plus 900k more, each a trained content vector
plus Gaussian noise (0.3 x the per-dimension spread), so the index sees trained-looking structure.
The users, histories and circles are the trained model's; the 1M catalogue is for speed and
retrieval recall only (no quality claim).
For each catalogue:
1. retrieval recall@20 of the ANN path against exact search (top 20 of the content kind by the
   model's score, consumed items left out), over --queries users, and the median time per query;
2. `bentoml serve` with exact and with ANN retrieval (GUANXI_ANN_MIN_ITEMS), wrk at 1 and 8
   connections, policy on, 1 worker;
3. memory: the proportional set size (PSS) of each worker with 2 workers sharing the
   memory-mapped embeddings.
Writes experiments/results/bench_ann.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.bench_serving import BENCH, lua_script, wrk  # noqa: E402
from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready  # noqa: E402

OUT = ROOT / "experiments" / "results" / "bench_ann.json"


def bundle_100k() -> Path:
    from guanxi.serving.champion import load_served

    out = BENCH / "bundle-100k"
    if (out / "bundle.json").is_file():
        return out
    served = load_served("models:/guanxi@champion", tracking_uri=f"sqlite:///{BENCH / 'mlflow.db'}")
    shutil.copytree(served.download_dir / "bundle", out)
    if not (out / "item_emb.npy").is_file():          # an older bundle: embeddings in one .npz
        emb = np.load(out / "embeddings.npz")
        np.save(out / "user_emb.npy", emb["user"])
        np.save(out / "item_emb.npy", emb["item"])
        (out / "embeddings.npz").unlink()
    return out


def bundle_1m(src: Path, total: int = 1_000_000) -> Path:
    """The 1M-item catalogue (module doc), written once to .bench/bundle-1m."""
    out = BENCH / "bundle-1m"
    if (out / "bundle.json").is_file():
        return out
    from guanxi.features.ids import IdMap

    tmp = BENCH / "bundle-1m.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    idmap = IdMap.load(src / "idmap.json")
    items = pd.read_parquet(src / "items.parquet")
    item_emb = np.load(src / "item_emb.npy") if (src / "item_emb.npy").is_file() else np.load(src / "embeddings.npz")["item"]
    user_emb = np.load(src / "user_emb.npy") if (src / "user_emb.npy").is_file() else np.load(src / "embeddings.npz")["user"]
    content = np.flatnonzero(items["kind"].to_numpy() == "content")
    extra = total - len(items)
    rng = np.random.default_rng(0)
    base = item_emb[content]
    noise = rng.normal(0, 1, (extra, item_emb.shape[1])).astype(np.float32) * (0.3 * base.std(axis=0))
    new_vecs = base[rng.integers(0, len(base), extra)] + noise
    new_ids = np.array([f"x{i}" for i in range(extra)], dtype=object)
    all_items = pd.concat([items, pd.DataFrame({"item_id": new_ids, "kind": "content", "commercial": False,
                                                "owner_id": None, "category": None})], ignore_index=True)
    IdMap(idmap.user_ids, np.concatenate([idmap.item_ids.astype(object), new_ids])).save(tmp / "idmap.json")
    all_items.to_parquet(tmp / "items.parquet")
    np.save(tmp / "item_emb.npy", np.concatenate([item_emb, new_vecs]).astype(np.float32))
    np.save(tmp / "user_emb.npy", user_emb)
    pop = np.load(src / "popularity.npy")
    np.save(tmp / "popularity.npy", np.concatenate([pop, rng.choice(pop[content], extra)]).astype(np.float32))
    shutil.copy(src / "history.npz", tmp / "history.npz")
    shutil.copy(src / "circles.parquet", tmp / "circles.parquet")
    meta = json.loads((src / "bundle.json").read_text())
    meta.update({"num_items": int(total), "synthetic_items": int(extra)})
    (tmp / "bundle.json").write_text(json.dumps(meta))
    tmp.rename(out)
    return out


def retrieval(path: Path, queries: int) -> dict:
    """ANN recall@20 against exact search over the content kind, and time per query."""
    from guanxi.serving.recommender import Recommender
    from guanxi.serving.retrieval import RetrievalConfig
    from guanxi.training.bundle import load_bundle

    bundle = load_bundle(path, mmap=True)
    start = time.perf_counter()
    ann = Recommender(bundle, RetrievalConfig(min_items=50_000, nprobe=64), path)
    build = time.perf_counter() - start
    exact = Recommender(bundle)
    users = np.random.default_rng(1).choice(exact.idmap.user_ids.astype(str), queries, replace=False)
    recalls, t_exact, t_ann = [], [], []
    for u in users:
        tops = []
        for rec, times in ((exact, t_exact), (ann, t_ann)):
            t = time.perf_counter()
            s = rec.score(u)
            cand = rec.candidates(s, 20, ["content"])
            times.append(time.perf_counter() - t)
            tops.append(set(cand[np.argsort(-s.scores[cand])[:20]].tolist()))
        recalls.append(len(tops[0] & tops[1]) / max(len(tops[0]), 1))
    return {"items": int(bundle.idmap.num_items), "index_build_s": round(build, 1),
            "recall_at_20_vs_exact": float(np.mean(recalls)),
            "score_and_candidates_ms": {"exact": 1000 * statistics.median(t_exact),
                                        "ann": 1000 * statistics.median(t_ann)}}


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(path: Path, ann_min: int, workers: int, seconds: int, script: Path, label: str) -> dict:
    import subprocess

    env = server_env(model_uri=str(path), events_db=str(BENCH / f"events-{label}.db"), workers=workers,
                     poll_seconds=0)
    env["GUANXI_ANN_MIN_ITEMS"] = str(ann_min)
    port = free_port()
    proc = start_server("127.0.0.1", port, env, log=BENCH / f"{label}.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=600)
        wrk(port, 2, 2, script)
        rows = [wrk(port, c, seconds, script) for c in (1, 8)]
        pids = subprocess.run(["pgrep", "-f", "_bentoml_impl.worker"], capture_output=True, text=True).stdout.split()
        mem = [round(pss_mb(int(p)), 1) for p in pids]
        return {"label": label, "workers": workers, "ann": bool(ann_min), "wrk": rows, "worker_pss_mb": mem}
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    small = bundle_100k()
    large = bundle_1m(small)
    script = BENCH / "recommend.lua"
    if not script.is_file():
        users = pd.read_json(small / "idmap.json", typ="series")["users"][:5000]
        lua_script(np.asarray(users), script)
    result: dict = {"catalogues": {}}
    for name, path in (("100k", small), ("1M", large)):
        entry = {"retrieval": retrieval(path, args.queries)}
        print(name, entry["retrieval"], flush=True)
        entry["serving"] = [serve(path, 0, 1, args.seconds, script, f"{name}-exact"),
                            serve(path, 50_000, 1, args.seconds, script, f"{name}-ann")]
        entry["memory_2_workers"] = serve(path, 0, 2, 3, script, f"{name}-exact-w2")["worker_pss_mb"]
        result["catalogues"][name] = entry
        for s in entry["serving"]:
            print(f"  {s['label']}: " + "; ".join(f"c={r['connections']} p50 {r['p50_ms']:.2f} ms p99 "
                                                  f"{r['p99_ms']:.2f} ms {r['req_per_s']:.0f} req/s"
                                                  for r in s["wrk"]), flush=True)
        print(f"  PSS per worker, 2 workers: {entry['memory_2_workers']} MB", flush=True)
    OUT.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
