"""Probe changes to guanxi's defaults on LastFM without touching its test split.

    .venv/bin/python experiments/probe_lastfm.py [--seeds 0 1] [--variants default dim=128 ...]

The protocol, one level down from the real one: each user's carved validation of the LastFM
(SocialLGN split) training set becomes the *test* of a derived split (seed ``100 + seed``); the
derived split's training set is carved again for early stopping, exactly as ``guanxi train``
does. Every number here therefore comes from training data; the real test split is never read.

For each variant (``--set``-style ``key=value`` overrides, comma-separated; ``default`` = none)
and seed it trains guanxi and reports the derived test's recall@20 and ndcg@20 twice:

- ``train_graph``: the best-validation checkpoint propagated over the graph it was trained on
  (what ``guanxi train`` reports);
- ``known_graph``: the same parameters propagated over every known interaction (train plus the
  carved validation), the graph serving would hold.

With ``--curves PNG`` it also traces the derived test at every epoch (``train``'s ``monitor``
hook: it watches, the checkpoint is still chosen on the inner validation), keeps each run's curve
in the JSON and plots derived test against inner validation, one panel per variant.

Writes ``experiments/results/probe_lastfm.json`` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from guanxi.features.coded import CodedEvents
from guanxi.features.datasets import load_dataset
from guanxi.features.graph import build_graph
from guanxi.training.adjacency import model_graph
from guanxi.training.config import TrainConfig, load_config
from guanxi.training.evaluate import ScoreFn, evaluate_ranking
from guanxi.training.train import Prepared, TrainResult, make_scorers, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import derived_split  # noqa: E402

OUT = Path(__file__).parent / "results" / "probe_lastfm.json"
DEFAULT_VARIANTS = ["default", "dim=128", "layers=2", "layers=4", "negatives=4096"]


def known_graph_metrics(result: TrainResult, config: TrainConfig) -> dict:
    """Derived-test metrics of ``result``'s checkpoint propagated over train + carved validation."""
    prep = result.prepared
    known = replace(prep.data, train=CodedEvents.concat([prep.data.train, prep.data.valid]))
    adjacency = model_graph(config, build_graph(known, prep.circles)).adjacency
    trained = result.model.adjacency
    result.model.adjacency = adjacency
    try:
        score, fallback = make_scorers(result.model, prep, social=True)
        return evaluate_ranking(score, prep.test_task, fallback, breakdowns=False)
    finally:
        result.model.adjacency = trained


def derived_test_monitor(score: ScoreFn, fallback: ScoreFn, prep: Prepared) -> dict:
    """Derived-test recall@20 and ndcg@20 of one epoch's scorers (``train``'s ``monitor``)."""
    m = evaluate_ranking(score, prep.test_task, fallback, breakdowns=False)
    return {f"derived_test_{k}": m[k] for k in ("recall_at_20", "ndcg_at_20")}


def chosen_epoch(curve: list[list[float]], patience: int) -> int:
    """The epoch early stopping with ``patience`` picks from ``curve`` rows ``[epoch, valid
    recall@20, ...]`` (the first best before ``patience`` evaluations without a gain)."""
    best, epoch, bad = -1.0, 0, 0
    for row in curve:
        if row[1] > best:
            best, epoch, bad = row[1], row[0], 0
        else:
            bad += 1
            if bad >= patience:
                break
    return int(epoch)


def plot_curves(rows: list[dict], path: Path, patience: int = 10) -> None:
    """One panel per variant: derived-test recall@20 (solid) and inner-validation recall@20
    (dotted) per epoch, one colour per seed, circled where early stopping with ``patience``
    (the default's) would have taken the checkpoint."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4), squeeze=False, sharey=True)
    for ax, variant in zip(axes[0], variants):
        for n, r in enumerate(x for x in rows if x["variant"] == variant):
            colour = f"C{n}"
            epochs = [c[0] for c in r["curve"]]
            ax.plot(epochs, [c[2] for c in r["curve"]], color=colour, label=f"seed {r['seed']}: derived test")
            ax.plot(epochs, [c[1] for c in r["curve"]], color=colour, linestyle=":", alpha=0.7,
                    label=f"seed {r['seed']}: inner validation")
            pick = chosen_epoch(r["curve"], patience)
            chosen = next(c for c in r["curve"] if c[0] == pick)
            ax.plot([chosen[0]], [chosen[2]], "o", color=colour, fillstyle="none", markersize=9)
        ax.set_title(variant, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylim(0.2, None)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"recall@20 (circle: the checkpoint patience {patience} takes)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--curves", type=Path, default=None,
                        help="trace the derived test per epoch and plot it to this PNG")
    args = parser.parse_args(argv)
    dataset = load_dataset("lastfm-sociallgn")
    rows = []
    for variant in args.variants:
        overrides = [] if variant == "default" else variant.split(",")
        for seed in args.seeds:
            config = load_config(None, overrides + [f"seed={seed}"])
            start = time.perf_counter()
            result = train(derived_split(dataset, seed), config, progress=False,
                           monitor=derived_test_monitor if args.curves else None)
            known = known_graph_metrics(result, config)
            row = {"variant": variant, "seed": seed, "best_epoch": result.best_epoch,
                   "seconds": round(time.perf_counter() - start, 1),
                   "valid_recall_at_20": result.metrics["valid"]["recall_at_20"],
                   "train_graph": {k: result.metrics[k] for k in ("recall_at_20", "ndcg_at_20")},
                   "known_graph": {k: known[k] for k in ("recall_at_20", "ndcg_at_20")}}
            if args.curves:
                row["curve"] = [[h["epoch"], h["valid_recall_at_20"], h["derived_test_recall_at_20"],
                                 h["derived_test_ndcg_at_20"]] for h in result.history if "valid_recall_at_20" in h]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), file=sys.stderr, flush=True)
    args.out.write_text(json.dumps({"protocol": "LastFM SocialLGN train; derived test = carved validation "
                                                "(seed 100 + seed); real test never read", "rows": rows},
                                   indent=2))
    if args.curves:
        plot_curves(rows, args.curves)
    print("| variant | seed | best epoch | s | valid r@20 | derived test r@20 / n@20 (train graph) | "
          "(known graph) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        tg, kg = r["train_graph"], r["known_graph"]
        print(f"| {r['variant']} | {r['seed']} | {r['best_epoch']} | {r['seconds']:.0f} | "
              f"{r['valid_recall_at_20']:.4f} | {tg['recall_at_20']:.4f} / {tg['ndcg_at_20']:.4f} | "
              f"{kg['recall_at_20']:.4f} / {kg['ndcg_at_20']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
