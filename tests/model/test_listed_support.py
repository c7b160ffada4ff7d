"""The ``listed`` social-support term: every listed contact weighs 1, added after training with a
weight chosen on validation, and served the way training ranked it."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from guanxi.bundle import load_bundle
from guanxi.serving.recommender import Recommender
from guanxi.training.config import TrainConfig
from guanxi.training.evaluate import evaluate_ranking
from guanxi.training.tracking import write_bundle
from guanxi.training.train import make_scorers, train
from tests.model.test_models import two_communities

pytestmark = pytest.mark.slow

WEIGHTS = "0,0.5,2,8"


@pytest.fixture(scope="module")
def listed():
    # ties without pair events: tie strength is learnt from item overlap, so `auto` takes `listed`
    config = TrainConfig(model="guanxi", max_epochs=4, dim=16, listed_weights=WEIGHTS)
    return train(two_communities(), config, progress=False), config


def test_auto_takes_the_listed_term_and_keeps_the_validation_best_weight(listed):
    result, config = listed
    model, prep = result.model, result.prepared
    assert prep.support is None and prep.listed_support is not None     # nothing of it was trained
    assert model.support_ties == "listed" and not model.support_weight.requires_grad
    chosen = model.support_weight.item()
    score, fallback = make_scorers(model, prep, True)
    recalls = {}
    for w in config.listed_weight_list:
        with torch.no_grad():
            model.support_weight.fill_(w)
        recalls[w] = evaluate_ranking(score, prep.valid_task, fallback, breakdowns=False)["recall_at_20"]
    assert chosen == max(recalls, key=recalls.get)                      # the first best on a tie
    record = result.metrics["support"]                                  # the metrics JSON keeps the choice
    assert record["ties"] == "listed" and record["weight"] == pytest.approx(chosen) == record["scale"]
    assert {g["scale"]: g["valid_recall_at_20"] for g in record["grid"]} == pytest.approx(recalls)
    assert [g["scale"] for g in record["grid"]] == list(config.listed_weight_list)
    with torch.no_grad():
        model.support_weight.fill_(chosen)
    # the term counts listed contacts: log1p(how many of them engaged in training)
    n = prep.idmap.num_users
    a, b = prep.data.tie_user.astype(np.int64), prep.data.tie_friend.astype(np.int64)
    ties = sp.csr_matrix((np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n))
    ties.data[:] = 1.0
    want = (ties @ prep.train_csr).toarray()
    assert np.allclose(prep.listed_support.toarray(), np.log1p(want), atol=1e-6)


def test_the_ablation_and_off_have_no_listed_term():
    data = two_communities()
    for overrides in ({"use_social": False}, {"social_score": "off"}):
        result = train(data, TrainConfig(model="guanxi", max_epochs=1, dim=16, **overrides), progress=False)
        assert result.prepared.listed_support is None and result.model.support_weight is None


def test_serving_adds_the_listed_term_over_its_history(listed, tmp_path):
    result, config = listed
    with torch.no_grad():
        result.model.support_weight.fill_(0.5)           # whatever was chosen, a visible weight
    bundle = load_bundle(write_bundle(tmp_path / "b", result, config))
    assert bundle.meta["support_ties"] == "listed" and bundle.meta["support_weight"] == pytest.approx(0.5)
    rec = Recommender(bundle)
    circles = bundle.circles
    for user in ["u0", "u7", "u70"]:
        u = rec.user_index(user)
        friends = rec.idmap.user_index(circles.loc[circles["user_id"].astype(str) == user, "friend_id"])
        assert len(friends)
        engaged = np.asarray(bundle.history[friends].sum(axis=0)).ravel()    # contacts who engaged, each once
        want = bundle.user_emb[u] @ bundle.item_emb.T + 0.5 * np.log1p(engaged)
        assert np.allclose(rec.score(user).scores, want, atol=1e-4)
