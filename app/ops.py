"""Operator commands: ``guanxi retrain [--every 6h]``, ``status``, ``rollback``, ``forget``
(registered by :mod:`guanxi.app.cli`)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from contextlib import closing

logger = logging.getLogger(__name__)

_EVERY = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_every(text: str) -> float:
    """``"6h"`` -> 21600.0 seconds (units s, m, h, d).

    Raises:
        ValueError: anything else.
    """
    m = _EVERY.match(text.strip())
    if not m:
        raise ValueError(f"--every {text!r}: expected a number and a unit, e.g. 30m, 6h, 1d")
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def _say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)


def cmd_retrain(args: argparse.Namespace) -> int:
    from guanxi.app import retrain as retraining
    from guanxi.app.retrain_lock import RetrainBusy

    config = retraining.load_retrain_config(args.config)
    every = parse_every(args.every) if args.every else None
    failures = 0
    while True:
        started = time.monotonic()
        try:
            result = retraining.retrain(args.events_db, args.tracking_uri, args.data, config, args.set,
                                        progress=not args.no_progress, say=_say, items=args.items,
                                        policy=args.policy)
            failures = 0
            if args.json:
                from guanxi.features.json_file import write_json

                write_json(args.json, result)
        except RetrainBusy as exc:
            _say(f"retrain: skipped: {exc}")
            if every is None:
                return 3
        except Exception as exc:  # noqa: BLE001 - a schedule outlives any one failed run (it also scrubs erasures)
            if every is None:
                raise
            failures += 1
            wait = min(every, config.retry_first_seconds * 2 ** (failures - 1))
            logger.debug("retrain failed", exc_info=True)
            _say(f"retrain: failed ({type(exc).__name__}: {exc}); failure {failures} in a row, "
                 f"retrying in {wait:.0f}s")
            time.sleep(wait)
            continue
        if every is None:
            return 0
        wait = max(0.0, every - (time.monotonic() - started))
        _say(f"retrain: next run in {wait / 3600:.2f}h")
        time.sleep(wait)


def cmd_status(args: argparse.Namespace) -> int:
    import mlflow

    from guanxi.registry import MODEL_NAME, alias_version, champion_history, use_tracking
    from guanxi.serving.event_stores import open_event_store, parse_event_log

    uri = use_tracking(args.tracking_uri)
    client = mlflow.MlflowClient()
    events_db = parse_event_log(args.events_db)
    out: dict = {"tracking_uri": uri, "events_db": str(events_db)}
    for alias in ("champion", "candidate"):
        version = alias_version(alias)
        entry: dict = {"version": version}
        if version is not None:
            mv = client.get_model_version(MODEL_NAME, version)
            metrics = client.get_run(mv.run_id).data.metrics
            entry.update({"run_id": mv.run_id, "watermark_seq": mv.tags.get("watermark_seq", "0"),
                          **{k: round(metrics[k], 4) for k in ("recall_at_20", "ndcg_at_20",
                                                               "holdout_candidate_recall_at_20") if k in metrics}})
        out[alias] = entry
    out["champion_history"] = champion_history()
    watermark = 0
    try:
        watermark = int(client.get_registered_model(MODEL_NAME).tags.get(
            "last_retrain_watermark", out["champion"].get("watermark_seq", 0) or 0))
    except mlflow.exceptions.MlflowException:
        pass
    out["data_watermark_seq"] = watermark
    out["holding_forgotten"] = {"versions": [], "cached": [], "bentoml": [], "unreadable": []}
    if events_db.exists():
        from guanxi.app.erasure import bento_store_holding, cached_bundles_holding, versions_holding

        with closing(open_event_store(args.events_db)) as store:
            pending = store.events_since(watermark)
            forget = store.forget_list()
            out["events_logged"] = store.max_seq()
        out["events_pending"] = int((~forget.mask(pending["user_id"].astype(str))).sum())
        out["forgotten_users"] = len(forget)
        held = [versions_holding(forget, client), cached_bundles_holding(forget), bento_store_holding(forget)]
        out["holding_forgotten"] = {"versions": held[0].rows, "cached": held[1].rows, "bentoml": held[2].rows,
                                    "unreadable": [u for h in held for u in h.unreadable]}
    else:
        out["events_pending"] = 0
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for alias in ("champion", "candidate"):
        e = out[alias]
        print(f"{alias:<10} " + (f"v{e['version']}  " + "  ".join(f"{k} {v}" for k, v in e.items() if k != "version")
                                 if e["version"] else "none"))
    print(f"watermark  event seq {watermark}; {out['events_pending']} events pending in {events_db}")
    print(f"history    {' -> '.join(out['champion_history']) or 'none'}")
    held = out["holding_forgotten"]
    if held["versions"] or held["cached"] or held["bentoml"]:
        print("erasure    still holding forgotten users: "
              + ", ".join([f"v{v['version']} ({v['users']})" for v in held["versions"]]
                          + [f"{c['path']} ({c['users']})" for c in held["cached"]]
                          + [f"{b.get('bento') or b.get('model')} ({b['users']})" for b in held["bentoml"]])
              + "; `guanxi retrain` publishes a scrubbed version, `guanxi forget --purge-versions` removes these")
    if held["unreadable"]:
        print(f"erasure    could not read {len(held['unreadable'])} copies to check them: "
              + "; ".join(held["unreadable"][:3]))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from guanxi.app.erasure import check_version_free, forget_list_for
    from guanxi.registry import rollback, use_tracking

    use_tracking(args.tracking_uri)
    forget, _ = forget_list_for(args.events_db, "guanxi rollback")
    old, new = rollback(check=lambda version: check_version_free(forget, version))
    print(f"@champion moved back from v{old} to v{new} (servers follow at their next poll)")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from guanxi.app.retrain_lock import RetrainBusy, retrain_lock_for
    from guanxi.serving.event_stores import open_event_store

    if not args.user_id and not args.purge_versions:
        raise ValueError("give a USER_ID to forget, --purge-versions, or both")
    # The retrain lock: a retrain reading the log now would train on the user after all.
    try:
        with closing(open_event_store(args.events_db, create=False)) as store, retrain_lock_for(args.events_db):
            _forget_locked(args, store)
    except RetrainBusy as exc:
        print(f"guanxi forget: {exc}; try again when it has finished", file=sys.stderr)
        return 3
    return 0


def _forget_locked(args: argparse.Namespace, store) -> None:
    if args.user_id:
        counts = store.forget(args.user_id)
        print(f"forgot {args.user_id}: deleted " + ", ".join(f"{n} {t}" for t, n in counts.items())
              + "; running servers stop using the user within one poll interval, the next retrain "
                "publishes a version without them")
    if args.purge_versions:
        from guanxi.app.erasure import purge
        from guanxi.registry import use_tracking

        use_tracking(args.tracking_uri)
        done = purge(store.forget_list())
        print(f"purged {len(done['versions'])} versions ("
              + (", ".join(f"v{v['version']}" for v in done["versions"]) or "none")
              + f"), {len(done['cached'])} cached bundles and {len(done['bentoml'])} BentoML models or Bentos "
                "that held forgotten users")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    events_db = os.environ.get("GUANXI_EVENTS_DB") or "events.db"
    p = sub.add_parser("retrain", help="train on new feedback, judge against @champion, promote if it wins")
    p.add_argument("--events-db", default=events_db, help="the service's event log: a SQLite file or a postgresql:// URL "
                   "(default $GUANXI_EVENTS_DB or events.db)")
    p.add_argument("--items", help="catalogue update (items.tsv format) classifying items first seen in feedback")
    p.add_argument("--policy", help="the policy file the service runs (default $GUANXI_POLICY or the packaged one)")
    p.add_argument("--data", help="base data (default: what the champion was trained on)")
    p.add_argument("--config", help="retrain YAML overriding app/retrain.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a training config key")
    p.add_argument("--every", help="run again on this period until stopped, e.g. 6h")
    p.add_argument("--tracking-uri")
    p.add_argument("--json", help="write the decision here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("status", help="champion and candidate, their metrics, watermark, pending events")
    p.add_argument("--events-db", default=events_db)
    p.add_argument("--tracking-uri")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rollback", help="move @champion back to the previous champion")
    p.add_argument("--tracking-uri")
    p.add_argument("--events-db", help="the service's event log, whose forget list the version must pass "
                   "(default $GUANXI_EVENTS_DB, else events.db, which must then exist)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("forget", help="delete a user's events and settings; keep them out of later models")
    p.add_argument("user_id", nargs="?")
    p.add_argument("--events-db", default=events_db, help="the service's event log (must exist)")
    p.add_argument("--purge-versions", action="store_true",
                   help="delete registered versions and cached bundles that still hold forgotten users")
    p.add_argument("--tracking-uri")
    p.set_defaults(func=cmd_forget)
