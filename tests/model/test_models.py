"""Every model through one contract, on data with a known right answer."""
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from guanxi.features.schema import Dataset, empty_pair_events, make_events, make_items
from guanxi.training.config import TrainConfig
from guanxi.training.evaluate import evaluate_ranking
from guanxi.training.train import make_scorers, train

PROBE = Path(__file__).resolve().parents[2] / "experiments" / "probe_lastfm.py"

MODELS = ["popular", "bpr", "lightgcn", "lightgcn-s", "guanxi", "ease", "itemknn"]


def two_communities(seed: int = 0) -> Dataset:
    """Two communities of 60 users; each likes its own 40 items (a checkerboard), friends
    within the community. Half of each user's items are training, a quarter each valid and test."""
    rng = np.random.default_rng(seed)
    rows = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u in range(120):
        block = u // 60
        liked = rng.permutation(np.arange(40) + 40 * block)[:16]
        for j, i in enumerate(liked):
            split = "train" if j < 8 else ("valid" if j < 12 else "test")
            rows[split][0].append(f"u{u}")
            rows[split][1].append(f"i{i}")
    ties_u, ties_v = [], []
    for u in range(120):
        for v in rng.choice(np.arange(60) + 60 * (u // 60), 4, replace=False):
            if v != u:
                ties_u.append(f"u{u}")
                ties_v.append(f"u{v}")
    ev = {k: make_events(np.array(a, dtype=object), np.array(b, dtype=object)) for k, (a, b) in rows.items()}
    return Dataset("two-communities", pd.DataFrame({"user_id": [f"u{u}" for u in range(120)]}),
                   make_items(np.array([f"i{i}" for i in range(80)], dtype=object)),
                   pd.DataFrame({"user_id": ties_u, "friend_id": ties_v}), empty_pair_events(),
                   ev["train"], ev["valid"], ev["test"])


@pytest.fixture(scope="module")
def checkerboard():
    return two_communities()


@pytest.mark.parametrize("name", MODELS)
def test_every_model_follows_the_contract(checkerboard, name):
    config = TrainConfig(model=name, max_epochs=60, patience=60, batch_size=256, lr=0.01, dim=16)
    result = train(checkerboard, config, progress=False)
    m = result.metrics
    for key in ("recall_at_10", "ndcg_at_10", "precision_at_10", "recall_at_20", "ndcg_at_20",
                "precision_at_20"):
        assert 0.0 <= m[key] <= 1.0
    assert m["users"] == 120 and "valid" in m and "breakdowns" in m
    if name != "popular":
        # The right answer: the 8 test items sit among the 32 unseen items of the user's own
        # block, so a model that learnt the blocks finds most of them in its top 20.
        assert m["recall_at_20"] > 0.5, m["recall_at_20"]
        assert result.best_epoch >= 1


def test_models_never_recommend_training_items(checkerboard):
    result = train(checkerboard, TrainConfig(model="guanxi", max_epochs=5, dim=16), progress=False)
    prep = result.prepared
    users = torch.arange(prep.idmap.num_users)
    exclude = [torch.from_numpy(prep.train_csr[u].indices.astype(np.int64)) for u in range(len(users))]
    top = result.model.recommend(users, 20, exclude)
    for u in range(len(users)):
        assert not set(top[u].tolist()) & set(exclude[u].tolist())


def test_training_is_deterministic_per_seed(checkerboard):
    a = train(checkerboard, TrainConfig(model="guanxi", max_epochs=4, dim=16, seed=3), progress=False)
    b = train(checkerboard, TrainConfig(model="guanxi", max_epochs=4, dim=16, seed=3), progress=False)
    c = train(checkerboard, TrainConfig(model="guanxi", max_epochs=4, dim=16, seed=4), progress=False)
    assert torch.equal(a.model.embedding.weight, b.model.embedding.weight)
    assert a.metrics["recall_at_20"] == b.metrics["recall_at_20"]
    assert not torch.equal(a.model.embedding.weight, c.model.embedding.weight)


def test_monitor_watches_every_epoch_without_changing_the_choice(checkerboard):
    """``monitor`` adds its numbers to each history row; training and the checkpoint stay as
    they are, and early stopping replayed from the history picks the same epoch."""
    spec = importlib.util.spec_from_file_location("probe_lastfm", PROBE)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    def watch(score, fallback, prep):
        m = evaluate_ranking(score, prep.test_task, fallback, breakdowns=False)
        return {"watched_recall_at_20": m["recall_at_20"]}

    # no support term: it is added (and rescaled) after training, past what the monitor sees
    config = TrainConfig(model="guanxi", max_epochs=25, patience=3, dim=16, lr=0.01, seed=1, social_score="off")
    plain = train(checkerboard, config, progress=False)
    watched = train(checkerboard, config, progress=False, monitor=watch)
    assert watched.best_epoch == plain.best_epoch and watched.epochs == plain.epochs
    assert torch.equal(watched.model.embedding.weight, plain.model.embedding.weight)
    assert all("watched_recall_at_20" in row for row in watched.history)
    assert not any("watched_recall_at_20" in row for row in plain.history)
    best = next(row for row in watched.history if row["epoch"] == watched.best_epoch)
    assert best["watched_recall_at_20"] == watched.metrics["recall_at_20"]
    curve = [[r["epoch"], r["valid_recall_at_20"]] for r in watched.history]
    assert probe.chosen_epoch(curve, config.patience) == watched.best_epoch


def test_early_stopping_reads_a_sample_of_validation_users_and_reports_all(checkerboard):
    """With ``valid_max_users`` below the validation users, each epoch's validation recall is that
    of the seeded sample; the reported validation metrics cover every validation user."""
    from guanxi.training.evaluate import sample_users

    result = train(checkerboard, TrainConfig(model="guanxi", max_epochs=1, dim=16, valid_max_users=30, seed=2,
                                             social_score="off"), progress=False)    # the model as trained
    task = sample_users(result.prepared.valid_task, 30, seed=2)
    assert len(np.unique(task.test_user)) == 30
    assert result.metrics["valid"]["users"] == 120
    score, fallback = make_scorers(result.model, result.prepared, social=True)
    sampled = evaluate_ranking(score, task, fallback, breakdowns=False)["recall_at_20"]
    assert result.history[0]["valid_recall_at_20"] == pytest.approx(sampled)
    assert sampled != pytest.approx(result.metrics["valid"]["recall_at_20"])


def test_the_item_model_grid_reads_the_same_sample(checkerboard, monkeypatch):
    from guanxi.training import train as train_module

    users: list[int] = []
    real = train_module.evaluate_ranking

    def spy(score, task, *args, **kwargs):
        users.append(len(np.unique(task.test_user)))
        return real(score, task, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_ranking", spy)
    result = train(checkerboard, TrainConfig(model="itemknn", valid_max_users=30), progress=False)
    assert users == [30] * result.epochs + [120, 120]         # the grid; then validation and test in full


@pytest.mark.slow
def test_guanxi_recovers_the_planted_world(tiny_world):
    """Social influence through strong ties is planted: guanxi must beat popularity (a strong
    baseline here: items are Pareto-popular within topics) and serve
    cold-start users (late joiners with contacts) better than popularity does."""
    ds = tiny_world.dataset
    pop = train(ds, TrainConfig(model="popular"), progress=False).metrics
    gx = train(ds, TrainConfig(model="guanxi", max_epochs=30, time_budget=60), progress=False).metrics
    assert gx["recall_at_20"] > 1.03 * pop["recall_at_20"]
    assert gx["breakdowns"]["cold_start"]["users"] > 0
    assert gx["breakdowns"]["cold_start"]["recall_at_20"] > pop["breakdowns"]["cold_start"]["recall_at_20"]


def test_time_budget_stops_early_and_still_evaluates(checkerboard):
    result = train(checkerboard, TrainConfig(model="lightgcn", max_epochs=10_000, time_budget=1.0,
                                             patience=10_000), progress=False)
    assert result.stopped == "time_budget"
    assert result.epochs < 10_000 and "recall_at_20" in result.metrics


@pytest.mark.parametrize("name", MODELS)
def test_every_model_saves_a_bundle_that_scores_like_the_model(checkerboard, tmp_path, name):
    """Regression: a model without propagation (bpr) handed out parameter views that numpy refused."""
    from guanxi.bundle import load_bundle
    from guanxi.features.circles import circles_table
    from guanxi.training.bundle import save_bundle
    from guanxi.training.train import make_scorers

    result = train(checkerboard, TrainConfig(model=name, max_epochs=2, dim=8), progress=False)
    prep = result.prepared
    save_bundle(tmp_path / "b", model_name=name, config={}, idmap=prep.idmap, model=result.model,
                items=prep.data.items_frame(), circles=circles_table(prep.data.user_ids, prep.circles),
                history=prep.test_task.exclude,
                popularity=prep.popularity.numpy(), metrics=result.metrics)
    bundle = load_bundle(tmp_path / "b")
    if result.model is not None:
        score, _ = make_scorers(result.model, prep, social=False)
        with torch.no_grad():
            expect = score(torch.arange(3)).numpy()
        got = bundle.user_emb[:3] @ bundle.item_emb.T
        assert np.allclose(got, expect, atol=1e-4)


def test_item_baselines_choose_their_regulariser_on_validation_only(checkerboard, monkeypatch):
    from guanxi.training import item_models

    seen: list[float] = []
    real = item_models.ease_weights

    def spy(g, lam):
        seen.append(lam)
        return real(g, lam)

    monkeypatch.setattr(item_models, "ease_weights", spy)
    result = train(checkerboard, TrainConfig(model="ease"), progress=False)
    assert seen == list(item_models.EASE_LAMBDAS)             # one solve per grid value, no refit
    grid = [row["valid_recall_at_20"] for row in result.history]
    assert result.metrics["chosen_param"] == item_models.EASE_LAMBDAS[int(np.argmax(grid))]
    assert result.metrics["valid"]["recall_at_20"] == pytest.approx(max(grid))


def test_the_item_model_grid_stops_at_the_time_budget(checkerboard):
    result = train(checkerboard, TrainConfig(model="itemknn", time_budget=1e-6), progress=False)
    assert len(result.history) == 1 and result.stopped == "time_budget"
    assert train(checkerboard, TrainConfig(model="itemknn"), progress=False).stopped == "grid"


def test_ease_over_the_most_popular_items_when_the_catalogue_is_too_big(checkerboard):
    result = train(checkerboard, TrainConfig(model="ease", ease_max_items=50), progress=False)
    assert result.metrics["recall_at_20"] > 0.4


def test_item_baselines_are_not_registered(tmp_path, capsys):
    from guanxi.app.cli import main

    world = tmp_path / "d"
    world.mkdir()
    (world / "train.tsv").write_text("user\titem\nu1\ti1\nu2\ti1\nu2\ti2\n")
    (world / "test.tsv").write_text("user\titem\nu1\ti2\n")
    (world / "social.tsv").write_text("user\tfriend\nu1\tu2\n")
    assert main(["train", "--data", str(world), "--model", "itemknn", "--register", "--no-track"]) == 2
    assert "cannot be served" in capsys.readouterr().err


def test_sparse_products_equal_torch_sparse_mm_bit_for_bit_and_keep_the_symmetric_gradient():
    from guanxi.training.model import SymmetricLGConv, sparse_dense_mm

    gen = torch.Generator().manual_seed(3)
    dense = torch.rand(30, 30, generator=gen) * (torch.rand(30, 30, generator=gen) < 0.2)
    adj = (dense + dense.T).to_sparse_csr()                                  # symmetric, with empty rows
    x = torch.randn(30, 5, generator=gen)
    assert torch.equal(sparse_dense_mm(adj, x), torch.sparse.mm(adj, x))
    wide = dense[:12].to_sparse_csr()                                        # a [12, 30] block
    assert torch.equal(sparse_dense_mm(wide, x), torch.sparse.mm(wide, x))
    x.requires_grad_()
    SymmetricLGConv()(x, adj).pow(2).sum().backward()
    want = 2 * adj.to_dense().T @ (adj.to_dense() @ x.detach())
    assert torch.allclose(x.grad, want, atol=1e-5)


def test_the_support_weight_is_rescaled_to_the_validation_best_of_its_scales():
    from guanxi.training.support_scale import ScaleRow, choose_scale, tune_support

    data = two_communities()
    ids = data.items["item_id"].to_numpy()
    data = dataclasses.replace(data, items=make_items(ids, np.where(np.arange(len(ids)) % 3 == 0, "merchant", "content")))
    result = train(data, TrainConfig(model="guanxi", max_epochs=4, dim=16, social_score="on", support_scales=""),
                   progress=False)
    model, prep = result.model, result.prepared
    learnt = float(model.support_weight.detach())
    assert learnt != 0.0                                                     # support_scales "" kept it
    scales = (1.0, 0.1, 40.0)
    recalls = {}
    for scale in scales:
        with torch.no_grad():
            model.support_weight.fill_(learnt * scale)
        score, fallback = make_scorers(model, prep, True)
        recalls[scale] = evaluate_ranking(score, prep.valid_task, fallback, breakdowns=False)["recall_at_20"]
    with torch.no_grad():
        model.support_weight.fill_(learnt)
    score, fallback = make_scorers(model, prep, True)                       # one ranker for every scale
    choice = tune_support(model, score, fallback, prep.valid_task, scales)
    chosen = choice.scale
    assert chosen == max(recalls, key=recalls.get)                           # the first best on a tie
    assert float(model.support_weight.detach()) == pytest.approx(learnt * chosen) == pytest.approx(choice.weight)
    assert [r.scale for r in choice.rows] == list(scales)
    assert {r.scale: r.recall for r in choice.rows} == pytest.approx(recalls)
    assert choice.record()["grid"][0] == {"scale": 1.0, "valid_recall_at_20": pytest.approx(recalls[1.0])}
    with torch.no_grad():
        model.support_weight.fill_(learnt)
    # the per-kind guard judges each scale's kinds, so it ranks scale 1 too
    rows = []
    for scale in scales:
        with torch.no_grad():
            model.support_weight.fill_(learnt * scale)
        m = evaluate_ranking(score, prep.valid_task, fallback)
        rows.append(ScaleRow(scale, m["recall_at_20"], {k: v["recall_at_20"] for k, v in m["breakdowns"]["kind"].items()}))
    with torch.no_grad():
        model.support_weight.fill_(learnt)
    assert rows[0].kinds                                                     # the data's kinds are judged
    assert tune_support(model, score, fallback, prep.valid_task, scales, learnt_recall=1.0, guard=0.05).scale \
        == choose_scale(rows, 0.05)
    with torch.no_grad():
        model.support_weight.fill_(learnt)
    # early stopping's recall stands for scale 1, not ranked again: a recall of 1 cannot be beaten
    assert tune_support(model, score, fallback, prep.valid_task, scales, learnt_recall=1.0).scale == 1.0
    assert float(model.support_weight.detach()) == pytest.approx(learnt)
    plain = train(data, TrainConfig(model="guanxi", max_epochs=1, dim=16, social_score="off"), progress=False)
    assert tune_support(plain.model, *make_scorers(plain.model, plain.prepared, True), plain.prepared.valid_task,
                        scales) == (1.0, None, ())
    assert "support" not in plain.metrics
