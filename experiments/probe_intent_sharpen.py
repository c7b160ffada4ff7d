"""Does a sharper reading of the inferred intent recover more of the truth's gain? Validation only.

    .venv/bin/python experiments/probe_intent_sharpen.py [--users 10000] [--seeds 0 1 2] [--no-episodes]

Today ``auto`` ranks with ``q = eps + (1 - 2 eps) p`` (``p``: the fitted probability of an economic
stretch now) and a shift ``beta * log(q_c / pi_c)``; ``truth`` ranks with ``p`` in {0, 1}. This probe
trains ``guanxi`` on a version 2 world as ``bench_intent.py`` does, then reads ``p`` through
``sigmoid(a * logit(p) + b)`` before the same shift, with ``a``, ``b`` and ``beta`` chosen together on
the validation task (today's reading is ``a = 1, b = 0``). Reported on the test split against the
truth, as ``truth_report`` does, for today's reading and for the chosen one. Appends to
``experiments/results/probe_intent_sharpen.json``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe import append_invocation  # noqa: E402

from guanxi.features.datasets import load_dataset  # noqa: E402
from guanxi.features.intent import IntentTable, counts_toward_mix, item_intent  # noqa: E402
from guanxi.features.intent_profile import (asked, decayed_stack, intent_features, long_term_mix,  # noqa: E402
                                            ranking_shift, state_probability)
from guanxi.features.world_intent import read_intent_truth  # noqa: E402
from guanxi.training.config import load_config  # noqa: E402
from guanxi.training.intent_fit import BETAS, _pair_intents, conditioned, event_intents, truth_report  # noqa: E402
from guanxi.training.evaluate import sample_users  # noqa: E402
from guanxi.training.train import make_scorers, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLOPES = (1.0, 2.0, 4.0, 8.0)
OFFSETS = (-1.0, 0.0, 1.0)


def sharpen(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """``sigmoid(a * logit(p) + b)``, ``p`` clipped away from 0 and 1."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return 1.0 / (1.0 + np.exp(-(a * np.log(p / (1 - p)) + b)))


class Reading:
    """An intent fit whose current probability is read through :func:`sharpen` (what
    ``truth_report`` needs of a fit: ``current``, ``mix``, ``beta``, ``reference_ts``)."""

    def __init__(self, fit, a: float, b: float, beta: float):
        self.fit, self.a, self.b, self.beta = fit, a, b, beta
        self.mix, self.reference_ts = fit.mix, fit.reference_ts

    def current(self, at: float) -> np.ndarray:
        return sharpen(self.fit.current(at), self.a, self.b)


def probe(users: int, seed: int, episodes: bool) -> dict:
    name = f"world-{users}-s{seed}-v2" + ("" if episodes else "-noep")
    world = ROOT / ".worlds" / name
    if not (world / "world.json").is_file():
        subprocess.run([str(Path(sys.executable).with_name("guanxi")), "world", "--users", str(users), "--seed",
                        str(seed), "--version", "2", "--out", str(world)] + ([] if episodes else ["--no-episodes"]),
                       check=True)
    truth = read_intent_truth(world)
    config = load_config(None, [])
    result = train(load_dataset(world), config, progress=False, intent_truth=truth)
    prep, fit = result.prepared, result.intent
    score, fallback = make_scorers(result.model, prep, social=True)
    table = IntentTable.load(config.intent_table or None)
    # The validation side exactly as fit_intent sees it: features at the start of validation.
    data = prep.data
    kind, commercial = data.item_kind.astype(np.int64), data.commercial.astype(bool)
    tr = data.train.take(counts_toward_mix(data.train.type))
    va = data.valid.take(counts_toward_mix(data.valid.type))
    t_int, v_int = event_intents(tr, table, kind, commercial), event_intents(va, table, kind, commercial)
    inner = None
    if prep.circles is not None and len(prep.circles[0]):
        u, c, s, is_inner = prep.circles
        inner = (u[is_inner], c[is_inner], s[is_inner].astype(np.float64))
    pi = long_term_mix(tr.user, t_int, data.num_users, inner).mix
    e, t = decayed_stack(tr.user, t_int, tr.ts, float(np.nanmin(va.ts)), data.num_users)
    p_valid = state_probability(intent_features(pi, e, t), np.asarray(fit.coef), fit.intercept)
    select = sample_users(prep.valid_task, config.valid_max_users, config.seed)
    pair_intent = _pair_intents(va, v_int, select)
    econ_items = item_intent(commercial).astype(bool)
    grid = []
    for a in SLOPES:
        for b in OFFSETS:
            shifts = {f"{beta}": ranking_shift(asked(sharpen(p_valid, a, b)), pi, beta) for beta in BETAS if beta}
            out = conditioned(score, fallback, select, pair_intent, shifts, econ_items)
            for beta in BETAS[1:]:
                grid.append({"a": a, "b": b, "beta": beta,
                             "valid_recall_at_20": out[f"{beta}"]["overall"]["recall_at_20"]})
            print(grid[-1], flush=True)
    chosen = max(grid, key=lambda r: r["valid_recall_at_20"])
    today = result.metrics["intent"]["truth"]
    test = truth_report(Reading(fit, chosen["a"], chosen["b"], chosen["beta"]), score, fallback, prep, truth.events,
                        table, truth.state_at(today["at"]), truth.propensity)
    keep = ("any", "auto", "truth", "gain", "auc")
    row = {"world": name, "seed": seed, "episodes": episodes, "beta_today": fit.beta, "chosen": chosen,
           "grid": grid, "today": {k: today.get(k) for k in keep}, "sharpened": {k: test.get(k) for k in keep}}
    for label, r in (("today", row["today"]), ("sharpened", row["sharpened"])):
        g = r["gain"].get("economic", {})
        print(f"{name} {label}: auc {r['auc']} economic any {r['any']['economic']['recall_at_20']:.4f} "
              f"auto {r['auto']['economic']['recall_at_20']:.4f} truth {r['truth']['economic']['recall_at_20']:.4f} "
              f"recovers {g.get('auto_recovers')} | social auto/any "
              f"{r['auto']['social']['recall_at_20'] / r['any']['social']['recall_at_20'] - 1:+.3f} | overall "
              f"{r['auto']['overall']['recall_at_20'] / r['any']['overall']['recall_at_20'] - 1:+.3f}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--no-episodes", action="store_true")
    args = parser.parse_args()
    rows = [probe(args.users, s, not args.no_episodes) for s in args.seeds]
    append_invocation(ROOT / "experiments" / "results" / "probe_intent_sharpen.json", "world-v2", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
