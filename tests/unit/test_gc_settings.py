"""The worker's GC settings: read from the environment with a clear error, applied after start-up."""
from __future__ import annotations

import gc

import pytest

from guanxi.serving.gc_settings import DEFAULT_THRESHOLDS, settle_after_startup, thresholds_from_env


def test_thresholds_default_and_override():
    assert thresholds_from_env({}) == DEFAULT_THRESHOLDS == (5000, 10, 100)
    assert thresholds_from_env({"GUANXI_GC_THRESHOLDS": " "}) == DEFAULT_THRESHOLDS
    assert thresholds_from_env({"GUANXI_GC_THRESHOLDS": "700,10,10"}) == (700, 10, 10)


@pytest.mark.parametrize("raw", ["5000,10", "a,b,c", "1,2,-3", "1,2,3,4"])
def test_bad_thresholds_name_the_variable_and_value(raw):
    with pytest.raises(ValueError, match=f"GUANXI_GC_THRESHOLDS.*{raw!r}"):
        thresholds_from_env({"GUANXI_GC_THRESHOLDS": raw})


def test_settle_freezes_and_sets_thresholds():
    before = gc.get_threshold()
    try:
        settle_after_startup((4000, 12, 90))
        assert gc.get_threshold() == (4000, 12, 90) and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
