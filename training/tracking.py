"""One MLflow run per training: resolved config, curves, test metrics, plots, the model bundle.

Metric names: test metrics as ``recall_at_20`` etc.; validation as ``valid_recall_at_20``;
the best checkpoint's validation as ``best_valid_recall_at_20``;
breakdowns flattened as ``sparsity_lt10_recall_at_20``, ``kind_merchant_ndcg_at_20``,
``cold_start_recall_at_20`` (MLflow names cannot hold ``<`` or ``>``); the social-support weight
chosen on validation as ``support_weight`` (and its multiple of the learnt weight, ``support_scale``).
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; set where plots are made, not at package import
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from guanxi.features.circles import circles_table  # noqa: E402
from guanxi.features.json_file import write_json  # noqa: E402
from guanxi.training.bundle import known_history, save_bundle  # noqa: E402
from guanxi.features.intent import IntentTable  # noqa: E402
from guanxi.features.pathways import pathways, plot_pathways  # noqa: E402
from guanxi.training.config import TrainConfig  # noqa: E402
from guanxi.training.metrics import metric_keys  # noqa: E402
from guanxi.registry import log_bundle_model, register_candidate  # noqa: E402
from guanxi.training.train import TrainResult  # noqa: E402

logger = logging.getLogger(__name__)
GROUP_NAMES = {"<10": "lt10", "10-49": "10to49", ">=50": "ge50"}


def flat_metrics(metrics: dict) -> dict[str, float]:
    """Test metrics and breakdowns as flat MLflow metric names (see module doc)."""
    out = {k: metrics[k] for k in metric_keys() if k in metrics}
    b = metrics.get("breakdowns", {})
    for group, vals in b.get("sparsity", {}).items():
        out.update({f"sparsity_{GROUP_NAMES[group]}_{k}": vals[k] for k in metric_keys()})
    for kind, vals in b.get("kind", {}).items():
        out.update({f"kind_{kind}_{k}": vals[k] for k in metric_keys()})
    if "cold_start" in b:
        out.update({f"cold_start_{k}": b["cold_start"][k] for k in metric_keys()})
    for k in metric_keys():
        if k in metrics.get("valid", {}):
            out[f"best_valid_{k}"] = metrics["valid"][k]
    if metrics.get("support", {}).get("weight") is not None:
        out["support_weight"] = metrics["support"]["weight"]
        out["support_scale"] = metrics["support"]["scale"]
    intent = metrics.get("intent", {})
    if intent.get("claims"):
        out["intent_beta"] = intent["beta"]
        out.update({f"intent_{k}": intent[k] for k in ("theta0", "theta1", "rate_per_day") if k in intent})
        truth = intent.get("truth", {})
        if truth:
            out["intent_auc"] = truth.get("auc", float("nan"))
            per = truth.get("per_event", {})
            out["intent_event_auc"] = per.get("auc", float("nan"))
            for prefix, block in (("intent", truth), ("intent_event", per)):
                for mode in ("any", "auto", "truth", "oracle"):
                    for group, vals in block.get(mode, {}).items():
                        out.update({f"{prefix}_{mode}_{group}_{k}": vals[k] for k in ("recall_at_20", "ndcg_at_20")})
    return {k: float(v) for k, v in out.items() if v == v}  # drop NaN (empty groups)


def plot_intent(truth: dict, path: Path) -> None:
    """recall@20 ranking with intent = any, auto, truth (and oracle), per true intent and overall:
    every user ranked once at the start of the test period, and every event at its own moment."""
    blocks = [("once per user, at the start", truth)]
    if truth.get("per_event"):
        blocks.append(("per event, as served", truth["per_event"]))
    fig, axes = plt.subplots(1, len(blocks), figsize=(6.5 * len(blocks), 4), squeeze=False)
    colors = {"any": "#999999", "auto": "#4c72b0", "oracle": "#55a868", "truth": "#dd8452"}
    for ax, (title, block) in zip(axes[0], blocks):
        groups = [g for g in ("overall", "economic", "social") if g in block["any"]]
        modes = [m for m in ("any", "auto", "oracle", "truth") if m in block]
        width = 0.8 / len(modes)
        for j, mode in enumerate(modes):
            values = [block[mode][g]["recall_at_20"] for g in groups]
            ax.bar(np.arange(len(groups)) + (j - (len(modes) - 1) / 2) * width, values, width,
                   color=colors[mode], label=f"intent = {mode}")
        ax.set_xticks(np.arange(len(groups)), [f"{g} events" for g in groups])
        ax.set_ylabel("recall@20")
        ax.set_title(f"{title} (inferred intent AUC {block.get('auc', float('nan')):.3f})", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(history: list[dict], path: Path) -> None:
    fig, ax1 = plt.subplots(figsize=(7, 4))
    epochs = [r["epoch"] for r in history]
    ax1.plot(epochs, [r["loss"] for r in history], color="tab:blue", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss", color="tab:blue")
    ax2 = ax1.twinx()
    ev = [r for r in history if "valid_recall_at_20" in r]
    ax2.plot([r["epoch"] for r in ev], [r["valid_recall_at_20"] for r in ev], color="tab:orange",
             label="validation recall@20")
    ax2.set_ylabel("validation recall@20", color="tab:orange")
    fig.suptitle("learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_breakdowns(metrics: dict, path: Path) -> None:
    b = metrics.get("breakdowns", {})
    panels = [("sparsity group", b.get("sparsity", {})), ("item kind", b.get("kind", {}))]
    panels = [(t, d) for t, d in panels if d]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 3.5), squeeze=False)
    for ax, (title, data) in zip(axes[0], panels):
        names = list(data)
        x = np.arange(len(names))
        for off, key in ((-0.2, "recall_at_20"), (0.2, "ndcg_at_20")):
            ax.bar(x + off, [data[n][key] for n in names], width=0.4, label=key)
        ax.set_xticks(x, [f"{n}\n({data[n]['users']} users)" for n in names])
        ax.set_title(f"test metrics by {title}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_bundle(out: Path, result: TrainResult, config: TrainConfig,
                 extra_events: pd.DataFrame | None = None, meta: dict | None = None) -> Path:
    """The recommendation bundle of ``result``: its history is every interaction known before the
    test split (train + valid, plus ``extra_events``, e.g. a retrain's holdout, which serving must
    not recommend back), with the event types seen on each pair."""
    prep = result.prepared
    history, bits = known_history(prep, extra_events)
    meta, arrays = dict(meta or {}), None
    fit = result.intent
    if fit is not None and fit.claims:
        table = IntentTable.load(config.intent_table or None)
        meta["intent"] = {**fit.record(), "reference_ts": fit.reference_ts, "table": table.to_dict()}
        meta["intent"].pop("grid", None)
        arrays = fit.arrays()
    return save_bundle(out, model_name=config.model, config=config.to_dict(), idmap=prep.idmap,
                       model=result.model, items=prep.data.items_frame(),
                       circles=circles_table(prep.data.user_ids, prep.circles), history=history,
                       popularity=prep.popularity.numpy(), metrics=result.metrics, history_types=bits,
                       meta=meta, intent=arrays)


def log_training(result: TrainResult, config: TrainConfig, experiment: str,
                 register: bool, data_spec: str, tags: dict[str, str] | None = None,
                 extra_events: pd.DataFrame | None = None, meta: dict | None = None) -> dict:
    """Log ``result`` as one MLflow run in ``experiment``; optionally register the model.
    ``extra_events`` join the bundle's history and ``meta`` its ``bundle.json`` (:func:`write_bundle`).

    Returns:
        ``{"run_id", "model_uri", "version"}`` (version None without ``register``).
    """
    mlflow.set_experiment(experiment)
    prep = result.prepared
    with mlflow.start_run() as run:
        mlflow.log_params({**config.to_dict(), "data": data_spec})
        mlflow.set_tags({"model": config.model, "dataset": prep.data.name, "stopped": result.stopped,
                         **(tags or {})})
        for row in result.history:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k not in ("epoch",)},
                               step=int(row["epoch"]))
        mlflow.log_metrics(flat_metrics(result.metrics))
        mlflow.log_metrics({"train_seconds": result.train_seconds, "epochs": result.epochs,
                            "best_epoch": result.best_epoch, "prepare_seconds": prep.seconds,
                            "seconds_to_best": result.seconds_to_best})
        if prep.tie_report is not None:
            mlflow.log_metrics({"tie_auc": prep.tie_report.auc,
                                "tie_heuristic_auc": prep.tie_report.heuristic_auc})
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            write_json(t / "metrics.json", result.metrics)
            write_json(t / "config.json", config.to_dict())
            if result.history:
                plot_learning_curves(result.history, t / "learning_curves.png")
            plot_breakdowns(result.metrics, t / "breakdowns.png")
            if result.metrics.get("intent", {}).get("truth"):
                plot_intent(result.metrics["intent"]["truth"], t / "intent.png")
            ways = pathways(prep.data, prep.circles, IntentTable.load(config.intent_table or None), max_events=2_000_000)
            write_json(t / "pathways.json", ways.to_dict())
            plot_pathways(ways, t / "pathways.png", prep.data.name)
            for name in ("metrics.json", "config.json", "learning_curves.png", "breakdowns.png", "intent.png",
                         "pathways.json", "pathways.png"):
                if (t / name).is_file():
                    mlflow.log_artifact(str(t / name))
            bundle = write_bundle(t / "bundle", result, config, extra_events, meta)
            model_uri = log_bundle_model(bundle)
        version = register_candidate(model_uri, run.info.run_id) if register else None
    return {"run_id": run.info.run_id, "model_uri": model_uri, "version": version}

