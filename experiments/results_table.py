"""The results table (dataset x model x metrics, seeds, train time) and each dataset's gap to its
best baseline, built from the recorded runs.

    .venv/bin/python experiments/results_table.py

Reads every metrics JSON that experiments/run_benchmarks.py wrote (``results/runs/<row>.json``: the
metrics, the resolved config, the train time; the same run is in MLflow, tagged ``bench``), groups
rows by dataset, model and variant, and reports the mean and standard deviation over seeds. The
last column names every config key where a run differs from what its plan row resolves to under
today's defaults (empty = the row is current); a run that finished inside today's ``time_budget``
is not flagged for it, nor world rows (their own validation split) for the carve keys. Below the
table, per dataset: its training pairs per user and per item, and guanxi (default variant) against
the best baseline of the table on recall@20 and ndcg@20; then guanxi against its ablation without social edges (seeds as recorded; the gain
paired by seed over the seeds both ran: seeds up, mean ± sd, and a paired t-test's t and two-sided p).
Writes experiments/results/results.md and prints it.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from guanxi.training.config import load_config

HERE = Path(__file__).resolve().parent
METRICS = ("recall_at_10", "ndcg_at_10", "recall_at_20", "ndcg_at_20")
BASELINES = ("popular", "bpr", "lightgcn", "lightgcn-s", "ease", "itemknn")
# Keys older runs did not record, with the behaviour they had before the key existed.
LEGACY = {"valid_max_per_user": 0, "fanouts": "", "ease_max_items": 20_000}
# Keys that only shape the carved validation: moot for world rows, which ship their own.
CARVE = ("valid_fraction", "valid_max_per_user")


def stale_keys(config: dict, train_seconds: float, row: dict | None) -> list[str]:
    """Config keys where a run differs from its plan ``row`` resolved under today's defaults.

    Args:
        config: the resolved config the run trained with.
        train_seconds: how long it trained.
        row: its plan.yaml row, or None when the row is no longer in the plan.

    Returns:
        ``key=old`` entries, sorted; empty when the run matches today's defaults.
    """
    if row is None:
        return ["not in plan"]
    overrides = [f"model={row['model']}", f"seed={row.get('seed', 0)}", *row.get("set", [])]
    current = load_config(None, overrides).to_dict()
    out = []
    for key, now in current.items():
        if key in CARVE and "world" in row:
            continue
        then = config[key] if key in config else LEGACY.get(key, now)
        if isinstance(then, str) and not isinstance(now, str):
            then = yaml.safe_load(then)
        if then is None:
            then = ""
        if key == "time_budget" and then != now and now and train_seconds < now:
            continue  # finished before today's budget could have stopped it
        same = np.isclose(float(then), float(now)) if isinstance(now, float) and not isinstance(then, str) \
            else str(then) == str(now)
        if not same:
            out.append(f"{key}={then}")
    # Before `listed_weights` existed, guanxi on ties without pair events had no support term at
    # all; world rows (pair events: the learnt term) and runs without social edges are unaffected.
    if ("listed_weights" not in config and row["model"] == "guanxi" and "world" not in row
            and current["use_social"] and current["social_score"] in ("auto", "listed")):
        out.append("listed_weights=none")
    return sorted(out)


def load_runs(runs_dir: Path, plan: dict[str, dict]) -> dict[tuple[str, str, str], list[tuple[str, dict]]]:
    """``(dataset, model, variant) -> [(row name, metrics JSON)]`` of every recorded plan row."""
    groups: dict[tuple[str, str, str], list[tuple[str, dict]]] = {}
    for path in sorted(runs_dir.glob("*.json")):
        run = json.loads(path.read_text())
        row = plan.get(path.stem, {})
        key = (run["dataset"], run["model"], row.get("variant", "default"))
        groups.setdefault(key, []).append((path.stem, run))
    return groups


def _mean(members: list[tuple[str, dict]], metric: str) -> np.ndarray:
    return np.array([float(r[metric]) if r.get(metric) is not None else np.nan for _, r in members])


def dataset_density(dataset: str, members: list[tuple[str, dict]]) -> dict | None:
    """Training pairs per user and per item of ``dataset``: from a run's ``data`` entry, else read
    from its saved split or generated world (``None`` when neither is at hand)."""
    for _, run in members:
        if run.get("data"):
            return run["data"]
    from guanxi.features.datasets import load_dataset
    from guanxi.features.dense_core import density

    for path in (HERE / "splits" / dataset, HERE.parent / ".worlds" / dataset):
        if path.is_dir():
            return density(load_dataset(path))
    return None


def gap_lines(groups: dict) -> list[str]:
    """Per dataset: its density, and guanxi (default) vs the best baseline on recall@20 and ndcg@20
    (seed means)."""
    lines = ["", "| dataset | train pairs per user | per item | guanxi recall@20 | best baseline (recall@20) "
             "| gap | guanxi ndcg@20 | best baseline (ndcg@20) | gap |", "|---|---|---|---|---|---|---|---|---|"]
    for dataset in sorted({d for d, _, _ in groups}):
        ours = groups.get((dataset, "guanxi", "default"))
        if not ours:
            continue
        dens = dataset_density(dataset, [m for (d, _, _), members in groups.items() if d == dataset for m in members])
        cells = [f"{dens['per_user']:.1f}", f"{dens['per_item']:.1f}"] if dens else ["–", "–"]
        for metric in ("recall_at_20", "ndcg_at_20"):
            mine = _mean(ours, metric).mean()
            base = [(m, _mean(groups[(dataset, m, "default")], metric).mean()) for m in BASELINES
                    if (dataset, m, "default") in groups]
            if not base:
                cells += [f"{mine:.4f}", "–", "–"]
                continue
            name, best = max(base, key=lambda b: b[1])
            cells += [f"{mine:.4f}", f"{name} {best:.4f}", f"{100 * (mine / best - 1):+.1f} %"]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return lines


def paired_gain(ours: list[tuple[str, dict]], ablated: list[tuple[str, dict]], metric: str) -> str:
    """The social side's gain seed by seed, over the seeds both variants ran: how many seeds gain,
    and the mean gain ± sd (relative to the ablation) with a paired t-test's t and two-sided p.
    ``–`` with fewer than two shared seeds."""
    by_seed = lambda members: {r["config"]["seed"]: float(r[metric]) for _, r in members  # noqa: E731
                               if r.get("config") and r.get(metric) is not None}
    mine, theirs = by_seed(ours), by_seed(ablated)
    seeds = sorted(set(mine) & set(theirs))
    if len(seeds) < 2:
        return "–"
    gain = np.array([100 * (mine[s] / theirs[s] - 1) for s in seeds])
    sd = gain.std(ddof=1)
    text = f"{int((gain > 0).sum())} / {len(seeds)} up, {gain.mean():+.1f} ± {sd:.1f} %"
    if sd > 0:   # a paired t-test over seeds: is the mean gain told apart from no gain?
        t = gain.mean() / (sd / np.sqrt(len(seeds)))
        p = 2 * stats.t.sf(abs(t), len(seeds) - 1)
        text += f" (t {t:.1f}, p {p:.2f})" if p >= 0.01 else f" (t {t:.1f}, p < 0.01)"
    return text


def ablation_lines(groups: dict) -> list[str]:
    """Per dataset with both: guanxi (default) against guanxi without social edges, seed mean ± sd,
    and the gain paired by seed (:func:`paired_gain`)."""
    lines = ["", "| dataset | seeds | guanxi recall@20 | no-social recall@20 | change | guanxi ndcg@20 | "
             "no-social ndcg@20 | change | gain by seed, recall@20 | gain by seed, ndcg@20 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for dataset in sorted({d for d, _, _ in groups}):
        ours, ablated = groups.get((dataset, "guanxi", "default")), groups.get((dataset, "guanxi", "no-social"))
        if not ours or not ablated:
            continue
        cells = [f"{len(ours)} / {len(ablated)}"]
        for metric in ("recall_at_20", "ndcg_at_20"):
            a, b = _mean(ours, metric), _mean(ablated, metric)
            cells += [f"{a.mean():.4f} ± {a.std():.4f}", f"{b.mean():.4f} ± {b.std():.4f}",
                      f"{100 * (b.mean() / a.mean() - 1):+.1f} %"]
        cells += [paired_gain(ours, ablated, m) for m in ("recall_at_20", "ndcg_at_20")]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(HERE / "results" / "runs"))
    parser.add_argument("--out", default=str(HERE / "results" / "results.md"))
    args = parser.parse_args()
    plan = {r["name"]: r for r in yaml.safe_load((HERE / "plan.yaml").read_text())["runs"]}
    groups = load_runs(Path(args.runs), plan)
    lines = ["| dataset | model | variant | seeds | " + " | ".join(m.replace("_at_", "@") for m in METRICS)
             + " | train s (to best) | re-run | differs from today's defaults |", "|---" * (len(METRICS) + 7) + "|"]
    for (dataset, model, variant), members in sorted(groups.items()):
        cells = []
        for metric in METRICS:
            v = _mean(members, metric)
            cells.append(f"{v.mean():.4f} ± {v.std():.4f}" if len(v) > 1 else f"{v.mean():.4f}")
        train_s = np.mean([r["train_seconds"] for _, r in members])
        best_s = np.mean([r.get("seconds_to_best", np.nan) for _, r in members])
        names = sorted(n for n, _ in members)
        rerun = ".venv/bin/python experiments/run_benchmarks.py --force --only " + " ".join(shlex.quote(n) for n in names)
        seeds = ",".join(sorted(str(r["config"].get("seed", "?")) for _, r in members))
        stale = sorted({k for n, r in members for k in stale_keys(r["config"], r["train_seconds"], plan.get(n))})
        lines.append(f"| {dataset} | {model} | {variant} | {seeds} | " + " | ".join(cells)
                     + f" | {train_s:.0f} ({best_s:.0f}) | `{rerun}` | {', '.join(stale)} |")
    lines += gap_lines(groups)
    lines += ablation_lines(groups)
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    missing = sorted(set(plan) - {n for members in groups.values() for n, _ in members})
    if missing:
        print(f"not run yet: {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
