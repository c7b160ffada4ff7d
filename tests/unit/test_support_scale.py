import math

import pytest

from guanxi.training.support_scale import ScaleRow, choose_scale

# Validation recall@20 of a retrain's candidate after a shift toward content (retrain_scenario.py):
# overall recall peaks at the learnt weight, which costs merchants 0.056 against their best scale.
RETRAIN = [
    ScaleRow(1, 0.2014, {"content": 0.2256, "merchant": 0.5268, "official_account": 0.9730}),
    ScaleRow(2, 0.1983, {"content": 0.2250, "merchant": 0.5669, "official_account": 0.9815}),
    ScaleRow(4, 0.1853, {"content": 0.2104, "merchant": 0.5831, "official_account": 0.9798}),
    ScaleRow(8, 0.1741, {"content": 0.1993, "merchant": 0.5831, "official_account": 0.9798}),
    ScaleRow(32, 0.1673, {"content": 0.1829, "merchant": 0.5785, "official_account": 0.9798}),
]
# The champion's own grid: merchants peak at x8, yet x32 costs them only 0.013.
CHAMPION = [
    ScaleRow(1, 0.1615, {"content": 0.1462, "merchant": 0.5457, "official_account": 0.9665}),
    ScaleRow(8, 0.1926, {"content": 0.2094, "merchant": 0.6039, "official_account": 0.9699}),
    ScaleRow(32, 0.2009, {"content": 0.2184, "merchant": 0.5912, "official_account": 0.9701}),
]


def test_without_a_guard_the_best_overall_recall_wins_first_on_a_tie():
    assert choose_scale(RETRAIN) == 1
    assert choose_scale([ScaleRow(1, 0.3, {}), ScaleRow(2, 0.5, {}), ScaleRow(4, 0.5, {})]) == 2


def test_the_guard_drops_scales_that_trade_a_kind_away():
    assert choose_scale(RETRAIN, guard=0.02) == 2       # x1 costs merchants 0.056; x2 only 0.016
    assert choose_scale(RETRAIN, guard=0.01) == 4       # x2 is now out too
    assert choose_scale(CHAMPION, guard=0.02) == 32     # within the guard: the overall best stays


def test_with_no_scale_within_the_guard_the_smallest_shortfall_wins():
    rows = [ScaleRow(1, 0.4, {"a": 0.5, "b": 0.1}), ScaleRow(2, 0.3, {"a": 0.3, "b": 0.3}),
            ScaleRow(4, 0.2, {"a": 0.1, "b": 0.5})]
    assert choose_scale(rows, guard=0.05) == 2          # worst shortfalls 0.4, 0.2, 0.4


def test_kinds_without_a_finite_recall_are_not_judged():
    rows = [ScaleRow(1, 0.4, {"a": 0.5, "b": math.nan}), ScaleRow(2, 0.3, {"a": 0.2, "b": math.nan})]
    assert choose_scale(rows, guard=0.02) == 1


def test_an_empty_grid_is_an_error():
    with pytest.raises(ValueError, match="at least one scale"):
        choose_scale([])
