"""What reading the intent now costs a request: the two-state filter against the logistic model it
replaced, side by side.

    .venv/bin/python experiments/bench_intent_now.py [--users 2000] [--rounds 2000]

Two hand-made bundles of one version 2 world (``tests/handmade.py``: the same vectors, the intent
profile with the filter and with the older logistic model), and for each ``IntentModel.use`` (what
``/recommend`` runs for ``intent: auto``) for a user with no recent events, 100 and 10,000 recent
events of their own (the filter reads the latest 256; the logistic model all of them), alternating
estimator and user every round. Prints and writes experiments/results/bench_intent_now.json: the
median and p99 in microseconds of each, and the ratio filter / logistic.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guanxi.bundle import load_bundle  # noqa: E402
from guanxi.features.schema import ITEM_EVENT_TYPES  # noqa: E402
from guanxi.serving.recent_facts import OwnRecent  # noqa: E402
from guanxi.serving.recommender import Recommender  # noqa: E402
from tests.handmade import handmade_bundle  # noqa: E402


def _own(rec: Recommender, n: int, now: float, rng: np.random.Generator) -> OwnRecent | None:
    """``n`` recent events of one user over the last two days: pays and views, mixed items."""
    if not n:
        return None
    items = rng.integers(0, len(rec.item_ids), n)
    codes = np.array([ITEM_EVENT_TYPES.index(t) for t in ("view", "pay")])
    types = codes[rng.integers(0, 2, n)]
    return OwnRecent(items, (1 << types).astype(np.int64), types, now - rng.uniform(0, 2 * 86_400, n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        subprocess.run([str(Path(sys.executable).with_name("guanxi")), "world", "--users", str(args.users),
                        "--seed", "0", "--version", "2", "--out", str(world)], check=True, capture_output=True)
        recs = {name: Recommender(load_bundle(handmade_bundle(world, Path(tmp) / name, 16, intent=name)))
                for name in ("filter", "logistic")}
    rng = np.random.default_rng(0)
    now = time.time()
    some = recs["filter"]
    cases = {n: _own(some, n, now, rng) for n in (0, 100, 10_000)}
    times: dict[tuple[str, int], list[float]] = {(e, n): [] for e in recs for n in cases}
    for _ in range(args.rounds):
        for n, own in cases.items():
            for name, rec in recs.items():
                start = time.perf_counter()
                rec.intent.use(3, "auto", now, own)
                times[(name, n)].append((time.perf_counter() - start) * 1e6)
    rows = []
    for n in cases:
        f, lg = np.array(times[("filter", n)]), np.array(times[("logistic", n)])
        rows.append({"own_recent_events": n,
                     "filter_p50_us": float(np.median(f)), "filter_p99_us": float(np.quantile(f, 0.99)),
                     "logistic_p50_us": float(np.median(lg)), "logistic_p99_us": float(np.quantile(lg, 0.99)),
                     "ratio_p50": float(np.median(f) / np.median(lg))})
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(), "rounds": args.rounds,
           "users": args.users, "rows": rows}
    (ROOT / "experiments" / "results" / "bench_intent_now.json").write_text(json.dumps(out, indent=2))
    print("| own recent events | filter p50 / p99 (µs) | logistic p50 / p99 (µs) | filter / logistic (p50) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['own_recent_events']:,} | {r['filter_p50_us']:.0f} / {r['filter_p99_us']:.0f} | "
              f"{r['logistic_p50_us']:.0f} / {r['logistic_p99_us']:.0f} | {r['ratio_p50']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
