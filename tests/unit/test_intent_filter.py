"""The two-state intent filter: its fit finds the parameters that generated the interactions, the
request path filters exactly as training does, and the state reads what a person just did."""
from __future__ import annotations

import numpy as np
import pytest

from guanxi.features.intent_filter import DAY_S, IntentFilter
from guanxi.training.intent_fit import filtered, fit_filter


def _simulate(n_users: int, theta0: float, theta1: float, rate: float, seed: int = 0):
    """Interactions drawn from the filter's own model: per user a propensity, stretches renewing at
    ``rate`` a day, one interaction a day on average over 60 days."""
    rng = np.random.default_rng(seed)
    propensity = rng.beta(2, 4, n_users)
    users, intents, times = [], [], []
    for u in range(n_users):
        t = np.sort(rng.uniform(0, 60, rng.poisson(60)))
        econ = rng.random() < propensity[u]
        last = 0.0
        for ti in t:
            if rng.random() < 1 - np.exp(-rate * (ti - last)):      # a renewal since the last one
                econ = rng.random() < propensity[u]
            last = ti
            users.append(u)
            intents.append(int(rng.random() < (theta1 if econ else theta0)))
            times.append(ti * DAY_S)
    user, intent, ts = np.array(users), np.array(intents, np.int8), np.array(times)
    mix = np.bincount(user, weights=intent, minlength=n_users) / np.maximum(np.bincount(user, minlength=n_users), 1)
    return user, intent, ts, mix


def test_the_fit_finds_the_parameters_that_generated_the_interactions():
    user, intent, ts, mix = _simulate(1500, 0.05, 0.7, 1 / 10)
    flt = fit_filter(user, intent, ts, mix)
    assert flt.theta0 == pytest.approx(0.05, abs=0.03)
    assert flt.theta1 == pytest.approx(0.7, abs=0.08)
    assert 1 / 20 < flt.rate < 1 / 5
    sampled = fit_filter(user, intent, ts, mix, max_users=600)       # a third of the users, same numbers
    assert sampled.theta1 == pytest.approx(flt.theta1, abs=0.06) and sampled.rate == pytest.approx(flt.rate, rel=0.4)


def test_the_request_path_filters_exactly_as_training_does():
    user, intent, ts, mix = _simulate(50, 0.05, 0.7, 1 / 10, seed=1)
    flt = IntentFilter(0.05, 0.7, 0.1)
    state, last_ts, propensity, _ = filtered(flt, user, intent, ts, mix)
    for u in range(50):
        mine = user == u
        shuffled = np.random.default_rng(u).permutation(int(mine.sum()))   # any order in, time order used
        one = flt.follow(float(propensity[u]), float("nan"), float(propensity[u]), intent[mine][shuffled],
                         ts[mine][shuffled])
        assert one[0] == pytest.approx(state[u], rel=1e-9)
        assert one[1] == last_ts[u] or (np.isnan(one[1]) and np.isnan(last_ts[u]))


def test_the_state_reads_what_a_person_just_did_and_fades_to_their_propensity():
    flt = IntentFilter(0.05, 0.7, 1 / 21)
    shopping, _ = flt.follow(0.2, 0.0, 0.2, np.ones(4, np.int8), np.arange(1, 5) * 3600.0)
    chatting, _ = flt.follow(0.2, 0.0, 0.2, np.zeros(4, np.int8), np.arange(1, 5) * 3600.0)
    assert shopping > 0.9 and chatting < 0.1
    later = flt.carry(np.array([shopping]), np.array([4 * 3600.0]), np.array([0.2]), 4 * 3600.0 + 200 * DAY_S)
    assert later[0] == pytest.approx(0.2, abs=1e-3)
    never = flt.carry(np.array([0.2]), np.array([np.nan]), np.array([0.2]), 1e9)
    assert never[0] == pytest.approx(0.2)


@pytest.mark.parametrize("bad", [(0.7, 0.05, 0.1), (0.0, 0.5, 0.1), (0.1, 0.5, 0.0)])
def test_parameters_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="theta0"):
        IntentFilter(*bad)


def test_a_person_s_usual_moves_nothing_and_shopping_now_lifts_economic_items():
    from guanxi.training.intent_fit import IntentFit

    fit = IntentFit(True, "", IntentFilter(0.05, 0.7, 1 / 21), beta=2.0, propensity=np.array([0.1, 0.5, 0.9]))
    assert np.allclose(fit.shifts(fit.propensity), 0.0)
    up_e, up_s = fit.shifts(np.full(3, 0.99))
    assert (up_e > 0).all() and (up_s < 0).all()
