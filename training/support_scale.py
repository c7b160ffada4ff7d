"""After training: the social-support weight rescaled on validation (``support_scales``), optionally
under a per-kind guardrail (``support_kind_guard``).

The softmax learns the support weight that best explains the training pairs; ranking held-out items
wants the contacts' engagement weighed more (on the world's validation, recall@20 0.142 at the
learnt weight, 0.178 at 32 times it; experiments/LOG.md). The grid's best overall recall can trade
one item kind away for another: a retrain after a shift toward content chose the learnt weight,
which costs merchants (reached through contacts' payments) more than the retrain's gate allows.
With a guard, a scale is eligible only when no kind falls more than the guard below that kind's
best recall on the grid.
"""
from __future__ import annotations

import logging
import math
from typing import NamedTuple

import torch

from guanxi.training.evaluate import RankingTask, ScoreFn, evaluate_ranking
from guanxi.training.model import GraphRecommender

logger = logging.getLogger(__name__)


class ScaleRow(NamedTuple):
    """One scale of the grid as validation saw it."""

    scale: float
    recall: float                 # overall recall@20
    kinds: dict[str, float]       # recall@20 per item kind (empty without a guard)


class SupportChoice(NamedTuple):
    """What :func:`tune_support` chose: the scale, the weight it set and the grid it judged."""

    scale: float
    weight: float | None          # the support weight now in the model (None: no support term)
    rows: tuple[ScaleRow, ...]    # empty when nothing was ranked

    def record(self) -> dict:
        """The choice as the metrics JSON's ``support`` entry."""
        return {"weight": self.weight, "scale": self.scale,
                "grid": [{"scale": r.scale, "valid_recall_at_20": r.recall} for r in self.rows]}


def choose_scale(rows: list[ScaleRow], guard: float = 0.0) -> float:
    """The scale with the best overall recall (the first on a tie); with ``guard > 0``, among the
    scales whose every kind is within ``guard`` (absolute recall@20) of that kind's best on the
    grid. When no scale is within the guard for every kind, the one whose worst kind falls least
    short wins (then overall recall).

    Args:
        rows: the grid, in the order the scales were listed (at least one row).
        guard: largest loss a kind may take against its best scale (0 = overall recall only).
    """
    if not rows:
        raise ValueError("choose_scale needs at least one scale")
    order = {id(r): n for n, r in enumerate(rows)}
    if guard <= 0:
        return max(rows, key=lambda r: (r.recall, -order[id(r)])).scale
    kinds = {k for r in rows for k, v in r.kinds.items() if math.isfinite(v)}
    best = {k: max(r.kinds[k] for r in rows if math.isfinite(r.kinds.get(k, math.nan))) for k in kinds}

    def shortfall(r: ScaleRow) -> float:
        return max((best[k] - r.kinds.get(k, -math.inf) for k in kinds), default=0.0)

    eligible = [r for r in rows if shortfall(r) <= guard + 1e-12]
    if eligible:
        return max(eligible, key=lambda r: (r.recall, -order[id(r)])).scale
    return min(rows, key=lambda r: (shortfall(r), -r.recall, order[id(r)])).scale


@torch.no_grad()
def tune_support(model: GraphRecommender, score: ScoreFn, fallback: ScoreFn, task: RankingTask,
                 scales: tuple[float, ...], learnt_recall: float | None = None,
                 guard: float = 0.0) -> SupportChoice:
    """Multiply the learnt social-support weight by the scale :func:`choose_scale` picks from its
    validation recall@20 on ``task``; scale 1.0 without a support term or without scales.

    Args:
        score, fallback: the model's scorers (``make_scorers``), built once: the propagation does
            not depend on the weight, which the ranker reads at each call.
        learnt_recall: the model's recall on ``task`` as it is (early stopping's best), reused for
            scale 1 instead of ranking it again (without a guard; the guard needs the kinds).
        guard: ``support_kind_guard`` (0 = overall recall only).

    Returns:
        the scale, the weight set and the grid's validation recalls.
    """
    if model.support_weight is None:
        return SupportChoice(1.0, None, ())
    if not scales:
        return SupportChoice(1.0, float(model.support_weight.detach()), ())
    learnt = model.support_weight.detach().clone()
    rows: list[ScaleRow] = []
    for scale in scales:
        if scale == 1.0 and learnt_recall is not None and guard <= 0:
            rows.append(ScaleRow(scale, learnt_recall, {}))
        else:
            model.support_weight.copy_(learnt * scale)
            m = evaluate_ranking(score, task, fallback, breakdowns=guard > 0)
            kinds = {k: v["recall_at_20"] for k, v in m.get("breakdowns", {}).get("kind", {}).items()}
            rows.append(ScaleRow(scale, m["recall_at_20"], kinds))
        logger.info("support weight x%g: validation recall@20 %.4f%s", scale, rows[-1].recall,
                    "".join(f", {k} {v:.4f}" for k, v in sorted(rows[-1].kinds.items())))
    best = choose_scale(rows, guard)
    if guard > 0:
        logger.info("support weight x%g chosen (no kind more than %g below its best where possible)", best, guard)
    model.support_weight.copy_(learnt * best)
    return SupportChoice(best, float(model.support_weight.detach()), tuple(rows))
