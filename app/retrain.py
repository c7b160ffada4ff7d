"""``guanxi retrain``: from logged feedback to a candidate, judged against the champion, promoted
only when it wins without breaking a guardrail.

Stages (one log line each):
1. lock (one retrain at a time) and read the champion, its data watermark and the pending events;
   no new events is a no-op;
2. build the data: the champion's base data plus every event the log ever acknowledged (cumulative,
   whatever earlier gates decided), forgotten users dropped everywhere, events on items no catalogue
   has classified held back; the newest ``holdout_fraction`` of the arrivals since the watermark
   (by arrival order) is the holdout, trained on by the next retrain;
3. train a new model with the champion's config, warm-started from its weights where ids persist,
   its support weight chosen under the gate's per-kind guardrail (``support_kind_guard``);
4. judge candidate and champion on the same holdout through the serving path
   (:mod:`guanxi.app.holdout`), and replay the deployed policy on the candidate's slates;
5. decide: recall@20 must beat the champion's by ``margin`` (relative), no kind, sparsity group or intent
   may lose more than ``max_group_drop``, no policy violation. Erasure overrides the gate: when the
   champion holds a forgotten user, the scrubbed candidate is promoted whatever it scores;
6. log the run (metrics, decision and reasons as tags, drift report), register ``@candidate`` and
   promote when the decision says so. Nothing touches the registry before this stage, so a retrain
   killed earlier leaves versions and aliases as they were.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from pydantic import model_validator

from guanxi.features.json_file import write_json
from guanxi.serving.event_stores import open_event_store
from guanxi.serving.recommender import Recommender
from guanxi.app.retrain_data import build_retrain_dataset, drift_report, plot_drift, replay_policy
from guanxi.yaml_config import FrozenConfig, load_yaml_config

logger = logging.getLogger(__name__)


class RetrainConfig(FrozenConfig):
    """Every key is documented in ``app/retrain.yaml``."""

    holdout_fraction: float = 0.2
    min_new_events: int = 1
    margin: float = 0.0
    max_group_drop: float = 0.02
    guard_min_users: int = 30
    replay_users: int = 300
    warm_start: bool = True
    time_budget: float = 900.0
    retry_first_seconds: float = 30.0

    @model_validator(mode="after")
    def _check(self) -> "RetrainConfig":
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        return self


def load_retrain_config(path: str | Path | None = None) -> RetrainConfig:
    """Defaults from ``app/retrain.yaml``, then the keys set in ``path`` (unknown key: error)."""
    return load_yaml_config(RetrainConfig(), "guanxi.app", "retrain.yaml", path, what="retrain")


def _stage(n: int, text: str, say: Callable[[str], None]) -> None:
    say(f"retrain {n}/6 {text}")


def warm_starter(champion_dir: Path) -> Callable[[torch.nn.Module, Any], int]:
    """Copy the champion's layer-0 embeddings (and item biases) into a new model where the user or
    item id persists; new ids keep their fresh initialisation."""
    from guanxi.features.ids import IdMap

    old_map = IdMap.load(champion_dir / "idmap.json")
    state = torch.load(champion_dir / "state_dict.pt", map_location="cpu")

    def apply(model: torch.nn.Module, idmap) -> int:
        old_emb = state.get("embedding.weight")
        if old_emb is None or old_emb.shape[1] != model.embedding.weight.shape[1]:
            return 0
        u_old = old_map.user_index(idmap.user_ids)
        i_old = old_map.item_index(idmap.item_ids)
        with torch.no_grad():
            w = model.embedding.weight
            keep_u = np.flatnonzero(u_old >= 0)
            keep_i = np.flatnonzero(i_old >= 0)
            w[torch.from_numpy(keep_u)] = old_emb[torch.from_numpy(u_old[keep_u])]
            w[torch.from_numpy(idmap.num_users + keep_i)] = old_emb[torch.from_numpy(old_map.num_users + i_old[keep_i])]
            if getattr(model, "item_bias", None) is not None and "item_bias" in state:
                model.item_bias[torch.from_numpy(keep_i)] = state["item_bias"][torch.from_numpy(i_old[keep_i])]
        return int(len(keep_u) + len(keep_i))

    return apply


def decide(champion: dict, candidate: dict, violations: int, config: RetrainConfig) -> tuple[bool, list[str]]:
    """Promote or not, and why (each reason a sentence with the numbers)."""
    reasons: list[str] = []
    ok = True
    c, n = champion["recall_at_20"], candidate["recall_at_20"]
    need = c * (1 + config.margin)
    if n > need or (config.margin == 0 and n > c):
        reasons.append(f"recall@20 {n:.4f} beats the champion's {c:.4f} (needed > {need:.4f})")
    else:
        ok = False
        reasons.append(f"recall@20 {n:.4f} does not beat the champion's {c:.4f} by the margin (needed > {need:.4f})")
    for family in ("kind", "sparsity", "intent"):
        for group, cm in champion["breakdowns"].get(family, {}).items():
            nm = candidate["breakdowns"].get(family, {}).get(group)
            if nm is None:          # no holdout pair of this kind that the candidate can rank
                continue
            users = cm.get("users", config.guard_min_users)
            if not np.isfinite(cm["recall_at_20"]) or not np.isfinite(nm["recall_at_20"]):
                continue
            if family in ("sparsity", "intent") and users < config.guard_min_users:
                continue
            drop = cm["recall_at_20"] - nm["recall_at_20"]
            if drop > config.max_group_drop:
                ok = False
                reasons.append(f"guardrail: {family} {group} recall@20 fell {drop:.4f} "
                               f"({cm['recall_at_20']:.4f} -> {nm['recall_at_20']:.4f}) > {config.max_group_drop}")
    if violations:
        ok = False
        reasons.append(f"guardrail: {violations} policy violations on the replay")
    else:
        reasons.append("policy invariants held on the replay")
    return ok, reasons


def retrain(events_db: str | Path, tracking_uri: str | None = None, data: str | None = None,
            config: RetrainConfig = RetrainConfig(), overrides: list[str] | None = None,
            progress: bool = True, say: Callable[[str], None] = print, items: str | Path | None = None,
            policy: str | Path | None = None,
            on_judged: Callable[[Recommender, Recommender, pd.DataFrame, pd.DataFrame], None] | None = None) -> dict:
    """Run one retrain (module doc). Returns ``{"decision": "promoted"|"rejected"|"no-op", ...}``.

    Args:
        items: a catalogue update (``items.tsv`` format) classifying items first seen in feedback.
        policy: the policy file the service runs (default ``$GUANXI_POLICY``, else the packaged one):
            the candidate's slates are replayed under it.
        on_judged: called as ``on_judged(champion, candidate, holdout, known)`` once the gate has
            judged them (served recommenders as the gate saw them, before the candidate is
            registered with the holdout counted as consumed), so a caller can judge a part of the
            holdout the same way (``experiments/retrain_scenario.py``: the users with a planted shift).

    Raises:
        ValueError: no champion to start from, or its data cannot be found.
        FileNotFoundError: no event log at ``events_db``.
        RetrainBusy: another retrain holds the lock.
        RetrainLockLost: the lock was lost before anything was registered (nothing is).
    """
    import mlflow

    from guanxi.features.datasets import load_dataset
    from guanxi.features.ids import IdMap
    from guanxi.features.load_split import read_items_file
    from guanxi.serving.champion import load_served
    from guanxi.serving.policy import load_policy
    from guanxi.serving.settings import ServeSettings
    from guanxi.training.config import load_config
    from guanxi.app.holdout import evaluate_served
    from guanxi.registry import MODEL_NAME, alias_version, download_bundle, promote, use_tracking
    from guanxi.app.retrain_lock import retrain_lock_for
    from guanxi.training.tracking import log_training, write_bundle
    from guanxi.training.train import train

    uri = use_tracking(tracking_uri)
    deployed = load_policy(policy or os.environ.get("GUANXI_POLICY") or None)
    # closed on every way out: a scheduler retrains for days, and each round opens the log again
    with closing(open_event_store(events_db, create=False)) as store, retrain_lock_for(events_db) as lock, \
            tempfile.TemporaryDirectory(prefix="guanxi-retrain-") as tmp:
        client = mlflow.MlflowClient()
        champion_v = alias_version("champion")
        if champion_v is None:
            raise ValueError(f"no @champion in {uri}: train with --register and promote a version first")
        mv = client.get_model_version(MODEL_NAME, champion_v)
        tags = client.get_registered_model(MODEL_NAME).tags
        watermark = int(tags.get("last_retrain_watermark", mv.tags.get("watermark_seq", 0)))
        imp_watermark = int(tags.get("last_retrain_impression_seq", 0))
        forget = store.forget_list()
        upto = store.max_seq()
        events = store.events_since(0, upto)
        events = events[~forget.mask(events["user_id"].astype(str))]
        pending = events[(events["seq"] > watermark) & (events["type"] != "impression")]
        # Impressions the service logged since the last retrain: exposure without a feedback event
        # is not a training signal here (weight 0), but what was served goes into the drift report.
        impressions = store.impressions_since(imp_watermark)
        impressions = impressions[~forget.mask(impressions["user_id"].astype(str))]
        champ_dir = download_bundle(f"models:/{MODEL_NAME}/{champion_v}", Path(tmp) / "champion", uri)
        holds = int(forget.mask(IdMap.load(champ_dir / "idmap.json").user_ids.astype(str)).sum())
        catalogue = pd.read_parquet(champ_dir / "items.parquet")       # read before anything else can fail
        if items is not None:
            catalogue = pd.concat([catalogue, read_items_file(Path(items), catalogue["item_id"])], ignore_index=True)
        _stage(1, f"champion v{champion_v}, watermark {watermark}, {len(pending)} new events "
                  f"({len(events)} acknowledged in all), {len(impressions)} impressions served, "
                  f"{len(forget)} forgotten users ({holds} in the champion)", say)
        if len(pending) < max(config.min_new_events, 1) and not holds:
            say(f"retrain: no-op: {len(pending)} new events since watermark {watermark} "
                f"(need {max(config.min_new_events, 1)}); no new version")
            return {"decision": "no-op", "champion_version": champion_v, "watermark": watermark,
                    "new_events": int(len(pending))}
        run = client.get_run(mv.run_id)
        data_spec = data or run.data.params.get("data")
        if not data_spec:
            raise ValueError(f"champion v{champion_v} records no data; pass --data")
        rd = build_retrain_dataset(load_dataset(data_spec), events, watermark, forget, config.holdout_fraction,
                                   catalogue)
        ds, holdout = rd.dataset, rd.holdout
        _stage(2, f"data: {len(ds.train)} training events ({rd.feedback_trained} from feedback, cumulative), "
                  f"holdout {len(holdout)} events of {holdout['user_id'].nunique()} users"
                  + (f"; {rd.held_back} events on {len(rd.unclassified)} unclassified items held back "
                     f"(e.g. {rd.unclassified[0]!r}; classify them with --items)" if rd.held_back else ""), say)
        params = {k: v for k, v in run.data.params.items() if k != "data"}
        # The support weight's grid is chosen under the gate's own per-kind guardrail (on the
        # candidate's validation carve), so the candidate does not trade a kind away to win overall.
        train_config = load_config(None, [f"{k}={v}" for k, v in sorted(params.items())]
                                   + [f"support_kind_guard={config.max_group_drop}"] + list(overrides or [])
                                   + [f"time_budget={config.time_budget}"])
        warm = warm_starter(champ_dir) if config.warm_start and (champ_dir / "state_dict.pt").is_file() else None
        _stage(3, f"training {train_config.model} (warm start: {'yes' if warm else 'no'}, "
                  f"budget {config.time_budget:.0f}s)", say)
        start = time.perf_counter()
        result = train(ds, train_config, progress=progress, warm_start=warm)
        say(f"retrain: trained {result.epochs} epochs in {time.perf_counter() - start:.0f}s ({result.stopped})")
        cand_dir = write_bundle(Path(tmp) / "candidate", result, train_config)
        champion = load_served(str(champ_dir)).recommender
        candidate = load_served(str(cand_dir)).recommender
        _stage(4, "judging champion and candidate on the holdout", say)
        if len(holdout):
            m_champ = evaluate_served(champion, holdout, rd.known, progress=progress)
            m_cand = evaluate_served(candidate, holdout, rd.known, progress=progress)
            if on_judged is not None:
                on_judged(champion, candidate, holdout, rd.known)
        else:
            m_champ = m_cand = None
        # The replay runs the deployed policy through the path serving takes (same retrieval setup).
        replayer = load_served(str(cand_dir), ann=ServeSettings.from_env().retrieval()).recommender
        violations, replayed = replay_policy(replayer, holdout, config.replay_users, deployed)
        if m_champ is not None:
            ok, reasons = decide(m_champ, m_cand, violations, config)
            say(f"retrain: holdout recall@20 champion {m_champ['recall_at_20']:.4f}, candidate "
                f"{m_cand['recall_at_20']:.4f}; policy replay {replayed} slates, {violations} violations")
        else:
            ok, reasons = False, ["no holdout events to judge on"]
        if holds:
            ok = True
            reasons.append(f"erasure: v{champion_v} holds {holds} forgotten users, so this scrubbed version is "
                           "promoted whatever the gate says")
        drift = drift_report(champion, result.prepared, pending, impressions)
        _stage(5, "decision: " + ("promote" if ok else "keep the champion") + " — " + "; ".join(reasons), say)
        new_watermark = upto
        run_tags = {"retrain": "1", "decision": "promote" if ok else "reject", "reasons": " | ".join(reasons)[:4900],
                    "champion_version": champion_v, "watermark_seq": str(new_watermark),
                    "previous_watermark_seq": str(watermark), "erasure": "1" if holds else "0",
                    "forgotten_users_dropped": str(holds),
                    "replayed_policy": json.dumps(deployed.to_dict())}
        lock.check()                 # a lost lock (dropped session) must not publish beside another retrain
        # The registered bundle counts the holdout (and "see fewer" feedback) as consumed: served, it
        # never recommends them back; its events watermark tells serving's recent view what it holds.
        known_extra = pd.concat([holdout, rd.known_only], ignore_index=True)
        info = log_training(result, train_config, "retrain", True, data_spec, run_tags, extra_events=known_extra,
                            meta={"events_watermark_seq": int(new_watermark)})
        version = info["version"]
        flat = {f"holdout_champion_{k}": v for k, v in (m_champ or {}).items() if isinstance(v, float) and np.isfinite(v)}
        flat.update({f"holdout_candidate_{k}": v for k, v in (m_cand or {}).items()
                     if isinstance(v, float) and np.isfinite(v)})
        flat.update({"policy_violations": violations, "new_events": len(pending),
                     "feedback_events_trained": rd.feedback_trained, "held_back_events": rd.held_back,
                     "epochs_trained": result.epochs})
        for k, v in flat.items():
            client.log_metric(info["run_id"], k, float(v))
        report = Path(tmp) / "drift.json"
        write_json(report, {"drift": drift, "holdout": {"champion": m_champ, "candidate": m_cand},
                            "unclassified_items": rd.unclassified[:1000]})
        plot_drift(drift, Path(tmp) / "drift.png")
        client.log_artifact(info["run_id"], str(report))
        client.log_artifact(info["run_id"], str(Path(tmp) / "drift.png"))
        client.set_model_version_tag(MODEL_NAME, version, "watermark_seq", str(new_watermark))
        client.set_registered_model_tag(MODEL_NAME, "last_retrain_watermark", str(new_watermark))
        if len(impressions):
            client.set_registered_model_tag(MODEL_NAME, "last_retrain_impression_seq",
                                            str(int(impressions["seq"].max())))
        if ok:
            lock.check()
            client.set_model_version_tag(MODEL_NAME, version, "previous_champion", champion_v)
            promote(version)
        _stage(6, f"registered v{version} as @candidate" + (f"; promoted v{version} to @champion"
                                                           if ok else f"; @champion stays v{champion_v}"), say)
        return {"decision": "promoted" if ok else "rejected", "version": version, "champion_version": champion_v,
                "run_id": info["run_id"], "reasons": reasons, "watermark": new_watermark,
                "new_events": int(len(pending)), "feedback_events_trained": rd.feedback_trained,
                "held_back_events": rd.held_back, "erasure": bool(holds),
                "holdout": {"champion": m_champ, "candidate": m_cand}, "policy_violations": violations,
                "epochs": result.epochs, "stopped": result.stopped}
