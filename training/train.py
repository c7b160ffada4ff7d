"""Training with early stopping on validation, then one evaluation on the test split.

The validation split is the dataset's own or is carved from train (never from test); the result
is the best-validation checkpoint, not a refit. Ctrl-C and ``time_budget`` stop training cleanly:
the best checkpoint so far is evaluated and reported.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from torch_geometric.data import HeteroData

from guanxi.features.circles import CircleConfig, CircleRows, build_circles
from guanxi.features.coded import CodedDataset, CodedEvents, coded_from_dataset
from guanxi.features.graph import build_graph, event_pairs
from guanxi.features.ids import IdMap
from guanxi.features.schema import ITEM_KINDS, Dataset
from guanxi.features.split import carve_validation
from guanxi.features.ties import TieStrengthReport, estimate_tie_strength
from guanxi.training.adjacency import circle_scores, model_graph, popularity_scores
from guanxi.training import distributed
from guanxi.training.config import ITEM_MODELS, TrainConfig
from guanxi.training.evaluate import RankingTask, ScoreFn, evaluate_ranking, sample_users
from guanxi.training.model import GraphRecommender
from guanxi.training.sampled import SampledTrainer
from guanxi.training.social_gate import SocialGate
from guanxi.training.support import SupportRows
from guanxi.features.intent import IntentTable
from guanxi.training.intent_fit import IntentFit, fit_intent
from guanxi.training.intent_truth import truth_report
from guanxi.training.support_scale import tune_support

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A dataset turned into codes, the typed graph, the model's edges and evaluation tasks for one
    config.

    Args:
        data: the dataset as codes, validation carved.
        graph: the typed graph of its training events (:func:`guanxi.features.graph.build_graph`).
        circles: circle rows (guanxi with ties), else None.
        item_kind: ``[I]`` kind name of every item.
    """

    data: CodedDataset
    idmap: IdMap
    graph: HeteroData
    pair_user: np.ndarray
    pair_item: np.ndarray
    train_csr: sp.csr_matrix
    social_csr: sp.csr_matrix
    adjacency: torch.Tensor | None
    valid_task: RankingTask
    test_task: RankingTask
    item_kind: np.ndarray
    popularity: torch.Tensor
    circles: CircleRows | None
    support: sp.csr_matrix | SupportRows | None
    tie_report: TieStrengthReport | None
    seconds: float
    gated_social: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    listed_support: sp.csr_matrix | SupportRows | None = None


@dataclass
class TrainResult:
    model: GraphRecommender | None
    prepared: Prepared
    metrics: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    epochs: int = 0
    train_seconds: float = 0.0
    stopped: str = "converged"
    intent: "IntentFit | None" = None

    @property
    def seconds_to_best(self) -> float:
        """Training seconds until the best validation checkpoint was reached."""
        for row in self.history:
            if row["epoch"] == self.best_epoch:
                return float(row["seconds"])
        return 0.0


def _task(idmap: IdMap, events: CodedEvents, exclude: sp.csr_matrix, train_count: np.ndarray,
          item_kind: np.ndarray) -> RankingTask:
    u, i, _ = event_pairs(events, idmap.num_items)
    return RankingTask(idmap.num_items, exclude, train_count, u, i, item_kind)


def _csr(u: np.ndarray, i: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=shape)
    m.data[:] = 1.0
    return m


def prepare(dataset: Dataset | CodedDataset, config: TrainConfig) -> Prepared:
    """Code the dataset, carve validation, estimate tie strength and circles on training events
    (guanxi), build the typed graph once and take the model's edges from it."""
    start = time.perf_counter()
    data = dataset if isinstance(dataset, CodedDataset) else coded_from_dataset(dataset)
    data = carve_validation(data, config.valid_fraction, config.seed, config.valid_max_per_user)
    idmap = IdMap(data.user_ids.to_numpy(zero_copy_only=False), data.item_ids.to_numpy(zero_copy_only=False))
    item_kind = np.asarray(ITEM_KINDS)[data.item_kind]
    circles = report = None
    if config.model == "guanxi" and len(data.tie_user):
        a, b, strength, report = estimate_tie_strength(data)
        circles = build_circles(a, b, strength, CircleConfig(config.inner_min_strength, config.inner_max_size))
    graph = build_graph(data, circles)
    edges = model_graph(config, graph, report.label if report is not None else None)
    pu, pi = edges.pair_user, edges.pair_item
    shape = (idmap.num_users, idmap.num_items)
    train_csr = _csr(pu, pi, shape)
    vu, vi, _ = event_pairs(data.valid, idmap.num_items)
    known_csr = _csr(np.concatenate([pu, vu]), np.concatenate([pi, vi]), shape)
    train_count = np.diff(train_csr.indptr)
    known_count = np.diff(known_csr.indptr)
    return Prepared(
        data, idmap, graph, pu, pi, train_csr, edges.social, edges.adjacency,
        valid_task=_task(idmap, data.valid, train_csr, train_count, item_kind),
        test_task=_task(idmap, data.test, known_csr, known_count, item_kind),
        item_kind=item_kind, popularity=popularity_scores(train_csr), circles=circles,
        support=edges.support, tie_report=report, seconds=time.perf_counter() - start,
        gated_social=edges.gated, listed_support=edges.listed)


def _descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One optimiser step on ``loss`` (skipped when it is not finite); returns its value."""
    value = loss.item()
    if math.isfinite(value):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return value


def _user_batch(train: sp.csr_matrix, users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A multinomial step's ``users [B]`` and their positives as ``rows [P]`` (into ``users``) and
    ``cols [P]`` (items)."""
    sub = train[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    return (torch.from_numpy(users.astype(np.int64)), torch.from_numpy(rows),
            torch.from_numpy(sub.indices.astype(np.int64)))


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (an error when no CUDA device is visible) or ``auto`` (CUDA when visible)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA device; use --set device=cpu")
    return torch.device(name)


def make_scorers(model: GraphRecommender | None, prep: Prepared, social: bool
                 ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """(score, fallback) functions ``[n] -> [n, num_items]`` for evaluation and serving; each call
    returns a fresh tensor (the ranking masks it in place)."""
    pop = prep.popularity
    if model is None:
        score = lambda u: pop[None, :].repeat(len(u), 1)
    else:
        model.eval()
        with torch.no_grad():
            ranker = model.ranker(model.get_embedding())
        device = model.embedding.weight.device
        score = lambda u: ranker(u.to(device)).cpu()
    has_contacts = np.diff(prep.social_csr.indptr) > 0

    def fallback(u: torch.Tensor) -> torch.Tensor:
        out = pop[None, :].expand(len(u), -1).clone()
        if social:
            sel = torch.from_numpy(has_contacts[u.numpy()])
            if sel.any():
                out[sel] = circle_scores(prep.social_csr, prep.train_csr, pop, u[sel])
        return out

    return score, fallback


def train(dataset: Dataset | CodedDataset, config: TrainConfig, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None,
          warm_start: Callable[[torch.nn.Module, IdMap], int] | None = None,
          monitor: Callable[[ScoreFn, ScoreFn, Prepared], dict] | None = None,
          intent_truth: "IntentTruth | None" = None) -> TrainResult:
    """Train ``config.model`` on ``dataset`` and evaluate the best-validation checkpoint on test.

    ``intent_truth`` (a version 2 world's, :class:`guanxi.features.world_intent.IntentTruth`), when
    given, joins the test report: how the inferred intent and the intent-conditioned ranking do
    against the truth (:func:`guanxi.training.intent_truth.truth_report`, the metrics' ``intent.truth``).

    ``warm_start(model, idmap)``, when given, initialises the fresh model (e.g. from the champion's
    weights where ids persist) before the first step and returns how many rows it copied.
    ``monitor(score, fallback, prepared)``, when given, runs after every validation with the
    epoch's scorers; the numbers it returns join that epoch's history row. It watches, it never
    selects: the checkpoint is still chosen on validation recall alone (the LastFM probe uses it
    to trace its derived test, a split cut from training data, epoch by epoch).
    """
    torch.manual_seed(config.seed)
    prep = prepare(dataset, config)
    social = config.model in ("lightgcn-s",) or (config.model == "guanxi" and len(prep.social_csr.data) > 0)
    if config.model == "popular":
        score, fallback = make_scorers(None, prep, social=False)
        valid = evaluate_ranking(score, prep.valid_task, fallback, breakdowns=False)
        metrics = evaluate_ranking(score, prep.test_task, fallback)
        metrics["valid"] = valid
        return TrainResult(None, prep, metrics, epochs=0)
    if config.model in ITEM_MODELS:
        return _train_item_model(prep, config, progress)

    layers = 0 if config.model == "bpr" else config.layers
    device = resolve_device(config.device)
    adjacency = prep.adjacency.to(device) if prep.adjacency is not None else None
    sampled = bool(config.fanout_list) and layers > 0
    if sampled and device.type != "cpu":
        raise ValueError("fanouts (sampled sub-graph steps) run on the CPU; use device: cpu or drop fanouts")
    model = GraphRecommender(prep.idmap.num_users, prep.idmap.num_items, config.dim, layers,
                             adjacency, cosine=config.resolved_loss in ("softmax", "multinomial"),
                             temperature=config.temperature, item_bias=config.item_bias,
                             support=prep.support,
                             social_gate=None if prep.gated_social is None or layers == 0
                             else SocialGate(prep.idmap.num_users, *prep.gated_social))
    if warm_start is not None:
        copied = warm_start(model, prep.idmap)
        logger.info("warm start: %d of %d embedding rows copied", copied, model.embedding.num_embeddings)
    model = model.to(device)
    ctx = distributed.init_from_env(device)
    step_loss = distributed.wrap(distributed.BatchLoss(model, config.resolved_loss, config.temperature,
                                                       config.weight_decay), ctx, device)
    # Several processes each take 1/world of the pairs per step: the same global batch.
    batch_size = max(1, config.batch_size // ctx.world_size)
    if sampled and ctx.active:
        raise ValueError("fanouts (sampled sub-graph steps) run in one process; drop torchrun or fanouts")
    trainer = SampledTrainer(model, config.fanout_list, config.lr, config.temperature, config.weight_decay,
                             config.seed, config.resolved_loss) if sampled else None
    optimizer = None if sampled else torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)              # same permutation on every rank
    neg_gen = torch.Generator().manual_seed(config.seed + 7919 * ctx.rank) if ctx.active else gen
    users_t = torch.from_numpy(prep.pair_user)
    items_t = torch.from_numpy(prep.pair_item)
    n_pairs = len(users_t)
    multinomial = config.resolved_loss == "multinomial"
    if multinomial:      # a step is a batch of users (those with training items), not of pairs
        active = np.flatnonzero(np.diff(prep.train_csr.indptr) > 0)
        n_pairs = len(active)
        batch_size = max(1, config.users_per_step(len(active)) // ctx.world_size)
        n_sample = config.items_per_step(batch_size, prep.idmap.num_items)
        if n_sample < prep.idmap.num_items:
            logger.info("multinomial: %d users a step score a shared sample of %d of %d items",
                        batch_size, n_sample, prep.idmap.num_items)
    select_task = sample_users(prep.valid_task, config.valid_max_users, config.seed)
    if select_task is not prep.valid_task:
        logger.info("validation for early stopping: a sample of %d validation users", config.valid_max_users)
    best_state, best_recall, best_epoch, bad = None, -1.0, 0, 0
    history: list[dict] = []
    stopped = "max_epochs"
    start = time.perf_counter()
    bar = tqdm(range(1, config.max_epochs + 1), disable=not progress, desc=f"train {config.model}")
    epoch = 0
    try:
        for epoch in bar:
            model.train()
            perm = distributed.shard(torch.randperm(n_pairs, generator=gen), ctx)
            total, steps = 0.0, 0
            for s in range(0, len(perm), batch_size):
                idx = perm[s:s + batch_size]
                if multinomial:
                    users, rows, cols = _user_batch(prep.train_csr, active[idx.numpy()])
                    sample = None if n_sample == prep.idmap.num_items else torch.randperm(
                        prep.idmap.num_items, generator=neg_gen)[:n_sample].to(device)
                    value = _descend(step_loss(users.to(device), rows.to(device), cols.to(device), sample),
                                     optimizer)
                else:
                    n_neg = len(idx) if config.resolved_loss == "bpr" else config.negatives
                    neg = torch.randint(0, prep.idmap.num_items, (n_neg,), generator=neg_gen)
                    if trainer is not None:
                        value = trainer.step(users_t[idx], items_t[idx], neg).loss
                    else:
                        value = _descend(step_loss(users_t[idx].to(device), items_t[idx].to(device),
                                                   neg.to(device)), optimizer)
                if not math.isfinite(value):
                    raise FloatingPointError(f"non-finite loss {value} at epoch {epoch}, step {steps}")
                total += value
                steps += 1
                if config.time_budget and distributed.any_rank(
                        time.perf_counter() - start > config.time_budget, ctx):
                    break
            row = {"epoch": epoch, "loss": total / max(steps, 1), "seconds": time.perf_counter() - start}
            if epoch % config.eval_every == 0 or epoch == config.max_epochs:
                score, fallback = make_scorers(model, prep, social)
                v = evaluate_ranking(score, select_task, fallback, breakdowns=False)
                row.update({f"valid_{k}": v[k] for k in ("recall_at_20", "ndcg_at_20")})
                if monitor is not None:
                    row.update(monitor(score, fallback, prep))
                if v["recall_at_20"] > best_recall:
                    best_recall, best_epoch, bad = v["recall_at_20"], epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", valid_recall_20=f"{best_recall:.4f}")
            if bad >= config.patience:
                stopped = "early_stopping"
                break
            if config.time_budget and distributed.any_rank(time.perf_counter() - start > config.time_budget, ctx):
                stopped = "time_budget"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
        logger.warning("interrupted at epoch %d; evaluating the best checkpoint so far", epoch)
    train_seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    if device.type != "cpu":  # the result (and what is saved from it) lives on the CPU
        model.adjacency = prep.adjacency
        model = model.cpu()
    scales, learnt_recall = config.support_scale_list, best_recall if best_state is not None else None
    if prep.listed_support is not None:      # added only now: nothing of it is learnt
        model.attach_listed_support(prep.listed_support)
        scales, learnt_recall = config.listed_weight_list, None
    score, fallback = make_scorers(model, prep, social)
    choice = tune_support(model, score, fallback, select_task, scales, learnt_recall=learnt_recall,
                          guard=config.support_kind_guard)
    intent = None
    if config.intent:
        intent = fit_intent(prep.data, prep.circles, IntentTable.load(config.intent_table or None), score, fallback,
                            select_task)
    valid = evaluate_ranking(score, prep.valid_task, fallback, breakdowns=False)
    metrics = evaluate_ranking(score, prep.test_task, fallback, progress=progress)
    metrics["valid"] = valid
    if choice.weight is not None:
        metrics["support"] = {"ties": model.support_ties, **choice.record()}
    if intent is not None:
        metrics["intent"] = intent.record()
        if intent.claims and intent_truth is not None:
            metrics["intent"]["truth"] = truth_report(intent, score, fallback, prep, intent_truth,
                                                      IntentTable.load(config.intent_table or None))
    return TrainResult(model, prep, metrics, history, best_epoch, epoch, train_seconds, stopped, intent)


def _train_item_model(prep: Prepared, config: TrainConfig, progress: bool) -> TrainResult:
    """An item-item baseline (:mod:`guanxi.training.item_models`): its regulariser chosen on validation,
    then one evaluation on test; cold-start users get the popularity fallback."""
    from guanxi.training.item_models import fit_item_model, n_grid

    _, fallback = make_scorers(None, prep, social=False)
    select_task = sample_users(prep.valid_task, config.valid_max_users, config.seed)
    start = time.perf_counter()
    history: list[dict] = []

    def validate(model) -> float:
        recall = evaluate_ranking(model.scores, select_task, fallback, breakdowns=False)["recall_at_20"]
        history.append({"epoch": len(history) + 1, "loss": 0.0, "seconds": time.perf_counter() - start,
                        "valid_recall_at_20": recall})
        return recall

    say = (lambda text: tqdm.write(text)) if progress else logger.info
    over = lambda: bool(config.time_budget) and time.perf_counter() - start > config.time_budget  # noqa: E731
    model, grid = fit_item_model(config.model, prep.train_csr, prep.popularity.numpy(), validate,
                                 config.ease_max_items, say, over)
    train_seconds = time.perf_counter() - start
    best_epoch = 1 + max(range(len(grid)), key=lambda i: grid[i]["valid_recall_at_20"])
    valid = evaluate_ranking(model.scores, prep.valid_task, fallback, breakdowns=False)
    metrics = evaluate_ranking(model.scores, prep.test_task, fallback, progress=progress)
    metrics["valid"] = valid
    metrics["chosen_param"] = model.param
    stopped = "time_budget" if len(grid) < n_grid(config.model) else "grid"   # only the budget cuts it short
    return TrainResult(None, prep, metrics, history, best_epoch, len(grid), train_seconds, stopped)
