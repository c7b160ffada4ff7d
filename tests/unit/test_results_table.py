"""The results table flags rows whose runs were trained under other defaults than today's."""
from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from training.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "results_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(overrides: list[str], drop: tuple[str, ...] = (), train_seconds: float = 100.0) -> SimpleNamespace:
    """What MLflow holds for a run: its resolved config as string params, its metrics."""
    params = {k: str(v) for k, v in asdict(load_config(None, overrides)).items() if k not in drop}
    return SimpleNamespace(data=SimpleNamespace(params=params, metrics={"train_seconds": train_seconds}))


def test_current_run_is_not_flagged_and_row_sets_count():
    stale_keys = _module().stale_keys
    row = {"name": "r", "model": "guanxi", "seed": 1, "set": ["dim=128"]}
    assert stale_keys(_run(["model=guanxi", "seed=1", "dim=128"]), row) == []
    assert stale_keys(_run(["model=guanxi", "seed=1"]), row) == [f"dim={load_config().dim}"]


def test_changed_default_and_legacy_key_are_flagged():
    stale_keys = _module().stale_keys
    row = {"name": "r", "model": "lightgcn", "seed": 0}
    old = _run(["model=lightgcn", "lr=0.01", "valid_max_per_user=0"], drop=("valid_max_per_user",))
    expected = ["lr=0.01"]
    if load_config().valid_max_per_user != 0:  # the key did not exist: the run had no cap
        expected.append("valid_max_per_user=0")
    assert stale_keys(old, row) == sorted(expected)
    assert stale_keys(old, None) == ["not in plan"]


def test_world_rows_ignore_the_carve_and_an_unreached_budget_is_moot():
    stale_keys = _module().stale_keys
    world = {"name": "w", "model": "guanxi", "world": {"users": 10, "seed": 0}}
    run = _run(["valid_fraction=0.3", "time_budget=0"], train_seconds=50.0)
    assert stale_keys(run, world) == []
    slow = _run(["valid_fraction=0.3", "time_budget=0"], train_seconds=1e9)
    assert stale_keys(slow, world) == ["time_budget=0.0"]
    carved = {"name": "c", "model": "guanxi"}
    assert stale_keys(run, carved) == ["valid_fraction=0.3"]
