"""End to end: serve a champion, replay a day of feedback with a planted shift in interests,
retrain, promote, and measure the gain on the new holdout.

    .venv/bin/python experiments/retrain_scenario.py [--users 5000] [--budget SECONDS]

1. A synthetic world (seed 3) and a guanxi champion trained on it (.scenario/mlflow.db).
2. `bentoml serve` of @champion (1 worker, polling the alias every 2 s).
3. A simulated day posted to /feedback over HTTP in batches of 1,000: the world's own next period
   (its test split, squeezed into 24 hours) plus the planted shift: 40 % of users take up one topic
   they had little interest in, reading and following its content and accounts (a trending list
   inside the topic, Zipf-distributed). /recommend is called for 40 users after each batch
   (impressions are logged).
4. `guanxi retrain` (in process): holdout = the newest 20 % of the day; champion and candidate are
   judged on it through the serving path; the gate decides.
5. If the gate promoted, the running server picks up the new champion; its model_version is
   checked over HTTP. The holdout of the users with the planted shift is judged through
   `retrain`'s `on_judged` hook, on the same two models the gate judged.
Writes experiments/results/retrain_scenario.json and prints a summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready  # noqa: E402

OUT = ROOT / "experiments" / "results" / "retrain_scenario.json"
WORK = ROOT / ".scenario"


def post(port: int, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def planted_day(world: Path, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The day's events: the world's next period squeezed into 24 h, plus the planted shift."""
    rng = np.random.default_rng(seed)
    test = pd.read_parquet(world / "test.parquet")
    train = pd.read_parquet(world / "train.parquet")
    truth = pd.read_parquet(world / "truth" / "items.parquet")
    items = pd.read_parquet(world / "items.parquet")
    start = int(pd.concat([train["ts"], test["ts"]]).max()) + 3600
    t0, t1 = test["ts"].min(), test["ts"].max()
    normal = test.assign(ts=(start + (test["ts"] - t0) / max(t1 - t0, 1) * 86_400).astype("int64"))
    # The topic with the least engagement so far: a real change of taste, not more of the same.
    topic_of = dict(zip(truth["item_id"], truth["topic"]))
    engaged = train["item_id"].map(topic_of).value_counts()
    topic = int(engaged.idxmin())
    kind = dict(zip(items["item_id"], items["kind"]))
    pool = np.array([i for i, t in topic_of.items() if t == topic and kind.get(i) in ("content", "official_account")])
    trending = rng.permutation(pool)[:200]
    p = 1.0 / np.arange(1, len(trending) + 1) ** 0.8
    p /= p.sum()
    users = pd.read_parquet(world / "users.parquet")["user_id"].to_numpy()
    shifted = rng.choice(users, int(0.4 * len(users)), replace=False)
    rows = []
    for u in shifted:
        for item in rng.choice(trending, rng.integers(4, 10), replace=False, p=p):
            rows.append((u, item, "follow" if kind[item] == "official_account" else rng.choice(["read", "like", "share"]),
                         int(start + rng.uniform(0, 86_400))))
    shift = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "ts"])
    day = pd.concat([normal[["user_id", "item_id", "type", "ts"]], shift], ignore_index=True)
    day = day.drop_duplicates(["user_id", "item_id"]).sort_values("ts", kind="stable").reset_index(drop=True)
    day["event_id"] = [f"day-{i}" for i in range(len(day))]
    return day, {"topic": topic, "shifted_users": len(shifted), "trending_items": len(trending),
                 "normal_events": int(len(normal)), "shift_events": int(len(shift)), "day_events": int(len(day)),
                 "shifted_user_ids": set(map(str, shifted))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--budget", type=float, default=None,
                        help="training seconds, champion and retrain (default: the configs' own budgets)")
    args = parser.parse_args()
    from guanxi.features.world import WorldConfig, generate_world
    from guanxi.features.world_io import write_world
    from guanxi.app.cli import main as guanxi
    from guanxi.registry import use_tracking
    from guanxi.app.retrain import RetrainConfig, retrain

    world = ROOT / ".worlds" / f"scenario-{args.users}-s3"
    if not (world / "world.json").is_file():
        write_world(generate_world(WorldConfig(users=args.users, seed=3)), world)
    if WORK.exists():
        import shutil

        shutil.rmtree(WORK)
    WORK.mkdir()
    uri = f"sqlite:///{WORK / 'mlflow.db'}"
    import os

    os.chdir(WORK)                       # MLflow artifacts land in .scenario/mlruns
    budget = [] if args.budget is None else ["--time-budget", str(args.budget)]
    assert guanxi(["train", "--data", str(world), *budget, "--no-progress",
                   "--register", "--tracking-uri", uri, "--experiment", "scenario",
                   "--events-db", str(WORK / "events.db")]) == 0
    assert guanxi(["promote", "1", "--tracking-uri", uri, "--events-db", str(WORK / "events.db")]) == 0

    port = free_port()
    env = server_env(tracking_uri=uri, events_db=str(WORK / "events.db"), workers=1, poll_seconds=2)
    proc = start_server("127.0.0.1", port, env, log=WORK / "server.log")
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=300)
        day, plan = planted_day(world)
        shifted_ids = plan.pop("shifted_user_ids")
        print(f"the day: {plan}", flush=True)
        users = day["user_id"].unique()
        asked = 0
        start = time.perf_counter()
        for i in range(0, len(day), 1000):
            chunk = day.iloc[i:i + 1000]
            events = [{"user_id": r.user_id, "item_id": r.item_id, "type": r.type, "ts": int(r.ts),
                       "event_id": r.event_id} for r in chunk.itertuples()]
            assert post(port, "/feedback", {"events": events})["accepted"] == len(events)
            for u in users[asked:asked + 40]:
                post(port, "/recommend", {"user_id": str(u), "k": 20})
            asked += 40
        posted = time.perf_counter() - start
        print(f"posted {len(day)} events and made {min(asked, len(users))} /recommend calls in {posted:.0f}s", flush=True)
        before = post(port, "/recommend", {"user_id": str(users[0])})["model_version"]

        from guanxi.app.holdout import evaluate_served

        on_shifted: dict[str, float] = {}

        def judge_shifted(champion, candidate, holdout, known) -> None:
            """The gate's own judgement, on the holdout of the users with the planted shift."""
            shifted = holdout[holdout["user_id"].astype(str).isin(shifted_ids)]
            on_shifted["champion"] = evaluate_served(champion, shifted, known)["recall_at_20"]
            on_shifted["candidate"] = evaluate_served(candidate, shifted, known)["recall_at_20"]

        config = RetrainConfig() if args.budget is None else RetrainConfig(time_budget=args.budget)
        t = time.perf_counter()
        result = retrain(WORK / "events.db", uri, config=config, progress=False, on_judged=judge_shifted)
        retrain_s = time.perf_counter() - t
        use_tracking(uri)
        deadline = time.monotonic() + 60
        after = before
        while time.monotonic() < deadline and after == before and result["decision"] == "promoted":
            time.sleep(1)
            after = post(port, "/recommend", {"user_id": str(users[0])})["model_version"]
    finally:
        stop_server(proc)
    h = result["holdout"]
    summary = {
        "world": {"users": args.users, "seed": 3}, "plan": plan, "post_seconds": round(posted, 1),
        "retrain_seconds": round(retrain_s, 1), "retrain_budget_seconds": config.time_budget,
        "retrain_epochs": result["epochs"],
        "retrain_stopped": result["stopped"], "decision": result["decision"], "reasons": result["reasons"],
        "champion_version": result["champion_version"], "candidate_version": result["version"],
        "served_version_before": before, "served_version_after": after,
        "holdout_users": h["champion"]["users"],
        "holdout": {m: {"champion": h["champion"][m], "candidate": h["candidate"][m],
                        "relative_gain": h["candidate"][m] / h["champion"][m] - 1 if h["champion"][m] else None}
                    for m in ("recall_at_10", "recall_at_20", "ndcg_at_20")},
        "holdout_by_kind_recall_at_20": {k: {"champion": h["champion"]["breakdowns"]["kind"][k]["recall_at_20"],
                                              "candidate": h["candidate"]["breakdowns"]["kind"][k]["recall_at_20"]}
                                          for k in h["champion"]["breakdowns"]["kind"]},
        "holdout_shifted_users_recall_at_20": on_shifted,
        "policy_violations": result["policy_violations"],
    }
    OUT.write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
