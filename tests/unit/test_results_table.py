"""The results table flags rows whose runs were trained under other defaults than today's, and
reports each dataset's gap to its best baseline."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from guanxi.training.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "results_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(overrides: list[str], drop: tuple[str, ...] = (), train_seconds: float = 100.0) -> tuple[dict, float]:
    """What a run records: its resolved config (as the metrics JSON holds it) and its train time."""
    return {k: v for k, v in load_config(None, overrides).to_dict().items() if k not in drop}, train_seconds


def test_current_run_is_not_flagged_and_row_sets_count():
    stale_keys = _module().stale_keys
    row = {"name": "r", "model": "guanxi", "seed": 1, "set": ["dim=128"]}
    assert stale_keys(*_run(["model=guanxi", "seed=1", "dim=128"]), row) == []
    assert stale_keys(*_run(["model=guanxi", "seed=1"]), row) == [f"dim={load_config().dim}"]


def test_changed_default_and_legacy_key_are_flagged():
    stale_keys = _module().stale_keys
    row = {"name": "r", "model": "lightgcn", "seed": 0}
    old = _run(["model=lightgcn", "lr=0.003", "valid_max_per_user=0"], drop=("valid_max_per_user",))
    expected = ["lr=0.003"]
    if load_config().valid_max_per_user != 0:  # the key did not exist: the run had no cap
        expected.append("valid_max_per_user=0")
    assert stale_keys(*old, row) == sorted(expected)
    assert stale_keys(*old, None) == ["not in plan"]


def test_world_rows_ignore_the_carve_and_an_unreached_budget_is_moot():
    stale_keys = _module().stale_keys
    world = {"name": "w", "model": "guanxi", "world": {"users": 10, "seed": 0}}
    run = _run(["valid_fraction=0.3", "time_budget=0"], train_seconds=50.0)
    assert stale_keys(*run, world) == []
    slow = _run(["valid_fraction=0.3", "time_budget=0"], train_seconds=1e9)
    assert stale_keys(*slow, world) == ["time_budget=0.0"]
    carved = {"name": "c", "model": "guanxi"}
    assert stale_keys(*run, carved) == ["valid_fraction=0.3"]


def test_runs_from_before_the_listed_term_are_flagged_where_it_applies():
    stale_keys = _module().stale_keys
    old = _run(["model=guanxi"], drop=("listed_weights",))
    assert stale_keys(*old, {"name": "c", "model": "guanxi"}) == ["listed_weights=none"]
    assert stale_keys(*old, {"name": "w", "model": "guanxi", "world": {"users": 10, "seed": 0}}) == []
    no_social = _run(["model=guanxi", "use_social=false"], drop=("listed_weights",))
    assert stale_keys(*no_social, {"name": "n", "model": "guanxi", "set": ["use_social=false"]}) == []
    assert stale_keys(*_run(["model=guanxi"]), {"name": "c", "model": "guanxi"}) == []


def test_gap_to_the_best_baseline_per_dataset():
    gap_lines = _module().gap_lines
    run = lambda r, n: {"recall_at_20": r, "ndcg_at_20": n}  # noqa: E731
    groups = {("d", "guanxi", "default"): [("a", run(0.30, 0.20)), ("b", run(0.32, 0.22))],
              ("d", "ease", "default"): [("c", run(0.25, 0.23))],
              ("d", "lightgcn", "default"): [("e", run(0.28, 0.19))],
              ("d", "guanxi", "no-social"): [("f", run(0.40, 0.40))]}
    row = gap_lines(groups)[-1]
    assert row == "| d | – | – | 0.3100 | lightgcn 0.2800 | +10.7 % | 0.2100 | ease 0.2300 | -8.7 % |"
    groups[("d", "ease", "default")][0][1]["data"] = {"per_user": 38.04, "per_item": 21.5}
    assert gap_lines(groups)[-1].startswith("| d | 38.0 | 21.5 | 0.3100 |")


def test_the_ablation_pairs_seeds_both_variants_ran():
    module = _module()
    run = lambda seed, r: {"recall_at_20": r, "ndcg_at_20": r, "config": {"seed": seed}}  # noqa: E731
    ours = [("a", run(0, 0.110)), ("b", run(1, 0.099)), ("c", run(2, 0.130))]
    ablated = [("d", run(0, 0.100)), ("e", run(1, 0.100))]                # seed 2 has no pair
    assert module.paired_gain(ours, ablated, "recall_at_20") == "1 / 2 up, +4.5 ± 7.8 % (t 0.8, p 0.56)"
    assert module.paired_gain(ours[:1], ablated, "recall_at_20") == "–"
    row = module.ablation_lines({("d", "guanxi", "default"): ours, ("d", "guanxi", "no-social"): ablated})[-1]
    assert row.endswith("| 1 / 2 up, +4.5 ± 7.8 % (t 0.8, p 0.56) | 1 / 2 up, +4.5 ± 7.8 % (t 0.8, p 0.56) |")
