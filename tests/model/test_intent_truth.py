"""Intent against a version 2 world's truth (training/intent_truth.py): both protocols reported, the
filter with the world's own parameters beside the fitted one, and, with episodes off, nothing for
the inference to find."""
from __future__ import annotations

import numpy as np
import pytest

from guanxi.features.world import WorldConfig, generate_world
from guanxi.features.world_intent import read_intent_truth
from guanxi.features.world_io import write_world
from guanxi.features.datasets import load_dataset
from guanxi.training.config import TrainConfig
from guanxi.training.intent_fit import BETAS, RATE_SCALES
from guanxi.training.train import train


def _run(tmp_path_factory, episodes: bool) -> dict:
    out = tmp_path_factory.mktemp("v2") / "w"
    write_world(generate_world(WorldConfig(users=2_000, seed=3, version=2, intent_episodes=episodes)), out)
    result = train(load_dataset(str(out)), TrainConfig(model="guanxi", max_epochs=8, dim=32), progress=False,
                   intent_truth=read_intent_truth(out))
    return result.metrics["intent"]


@pytest.fixture(scope="module")
def episodes_on(tmp_path_factory) -> dict:
    return _run(tmp_path_factory, True)


def test_the_fit_chooses_beta_and_rate_on_validation_judged_per_event(episodes_on):
    grid = episodes_on["grid"]
    assert {(g["beta"], g["rate_scale"]) for g in grid} == {(0.0, 1.0)} | {
        (b, s) for b in BETAS if b > 0 for s in RATE_SCALES}
    best = max(grid, key=lambda g: (g["valid_recall_at_20"], -g["beta"], g["rate_scale"]))
    assert episodes_on["beta"] == best["beta"]
    assert episodes_on["rate_per_day"] == pytest.approx(episodes_on["fitted_rate_per_day"] * best["rate_scale"])


def test_both_protocols_report_every_mode_and_the_per_event_inference_pays(episodes_on):
    truth = episodes_on["truth"]
    for block in (truth, truth["per_event"]):
        for mode in ("any", "auto", "truth", "oracle"):
            assert set(block[mode]) == {"overall", "economic", "social"}
        assert 0.5 < block["auc"] <= 1.0 and 0.5 < block["oracle_auc"] <= 1.0
        assert {"auto_recovers", "oracle_recovers", "truth_over_any"} <= set(block["gain"]["economic"])
    per = truth["per_event"]
    assert per["events"] > 1_000
    assert per["auto"]["economic"]["events"] + per["auto"]["social"]["events"] == per["events"]
    # knowing the episode helps the events of each intent; reading it from behaviour helps economic ones
    assert per["truth"]["economic"]["recall_at_20"] > per["any"]["economic"]["recall_at_20"]
    assert per["truth"]["social"]["recall_at_20"] > per["any"]["social"]["recall_at_20"]
    if episodes_on["beta"] > 0:
        assert per["auto"]["economic"]["recall_at_20"] > per["any"]["economic"]["recall_at_20"]


def test_with_episodes_off_there_is_no_oracle_and_auto_barely_moves(tmp_path_factory):
    off = _run(tmp_path_factory, False)
    truth = off["truth"]
    assert "oracle" not in truth and "oracle" not in truth["per_event"]
    assert np.isnan(truth["auc"]) and np.isnan(truth["per_event"]["auc"])
    per = truth["per_event"]
    change = per["auto"]["overall"]["recall_at_20"] / per["any"]["overall"]["recall_at_20"] - 1
    assert abs(change) < 0.03
