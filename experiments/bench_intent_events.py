"""What judging intent per event costs the fit at scale: ``event_metrics`` over the validation grid.

    .venv/bin/python experiments/bench_intent_events.py [--items 8250 82500] [--events 50000]

Random 64-d user and item vectors (the cost does not depend on what they hold), ``--events``
held-out interactions of 20,000 users (the fit's cap, ``VALID_MAX_EVENTS``), each known item set 30
items a user, and the fit's 16 rankings (``beta`` x rate scale, training/intent_fit.py). Prints and
writes experiments/results/bench_intent_events.json: seconds for the grid, per catalogue size.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from guanxi.features.coded import CodedEvents
from guanxi.training.intent_events import event_metrics, event_task
from guanxi.training.intent_fit import BETAS, RATE_SCALES

OUT = Path(__file__).parent / "results" / "bench_intent_events.json"


def one(n_items: int, n_events: int, n_users: int = 20_000, dim: int = 64) -> dict:
    rng = np.random.default_rng(0)
    users, items = torch.randn(n_users, dim), torch.randn(n_items, dim)
    score = lambda u: users[u] @ items.T          # noqa: E731
    known = sp.csr_matrix((np.ones(n_users * 30), (np.repeat(np.arange(n_users), 30),
                           rng.integers(0, n_items, n_users * 30))), shape=(n_users, n_items))
    ev = CodedEvents(rng.integers(0, n_users, n_events), rng.integers(0, n_items, n_events),
                     np.zeros(n_events, np.int8), rng.uniform(0, 1e6, n_events))
    task = event_task(ev, rng.integers(0, 2, n_events).astype(np.int8), known, np.ones(n_users, np.int64))
    n_shifts = len(BETAS) * len(RATE_SCALES) - (len(RATE_SCALES) - 1)
    shifts = {str(k): (rng.normal(0, 1, len(task)), rng.normal(0, 1, len(task))) for k in range(n_shifts)}
    econ = rng.random(n_items) < 0.25
    start = time.perf_counter()
    event_metrics(score, score, task, shifts, econ)
    return {"items": n_items, "events": len(task), "rankings": n_shifts, "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[8_250, 82_500])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    rows = [one(n, args.events) for n in args.items]
    OUT.write_text(json.dumps({"torch_threads": torch.get_num_threads(), "rows": rows}, indent=2))
    for r in rows:
        print(f"{r['items']:>7} items, {r['events']} events, {r['rankings']} rankings: {r['seconds']} s")


if __name__ == "__main__":
    main()
