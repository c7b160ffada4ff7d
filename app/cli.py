"""The ``guanxi`` command line: one console script, one subcommand per job.

Logging is configured here and nowhere else. Errors at the boundary (bad data, bad config) print
one clear line and exit with status 2; Ctrl-C exits with 130 after the job has cleaned up.
"""
from __future__ import annotations

import argparse
import os
import logging
import sys
import time
from pathlib import Path

from guanxi.features.json_file import write_json
from guanxi.features.named_sets import NAMED_SETS
from guanxi.training.config import ITEM_MODELS, MODELS

logger = logging.getLogger("guanxi")


def _cmd_world(args: argparse.Namespace) -> int:
    from guanxi.features.world import WorldConfig, generate_codes
    from guanxi.features.world_io import write_world_codes

    start = time.perf_counter()
    config = WorldConfig(users=args.users, seed=args.seed, version=getattr(args, "version", 1),
                         intent_episodes=not getattr(args, "no_episodes", False))
    print(f"generating {config.users:,} users (seed {config.seed}) ...", flush=True)
    codes = generate_codes(config)
    print(f"generated in {time.perf_counter() - start:.1f}s; writing {args.out}", flush=True)
    write_world_codes(codes, args.out, progress=lambda name: print(f"  writing {name}", flush=True))
    counts = {split: int(codes.split_of(split).sum()) for split in ("train", "valid", "test")}
    print(f"world {codes.name}: {config.users} users, {len(codes.item_kind)} items, "
          f"{len(codes.tie_u)} ties, {len(codes.pair_user)} pair events, train/valid/test events "
          f"{counts['train']}/{counts['valid']}/{counts['test']} -> {args.out} "
          f"({time.perf_counter() - start:.1f}s)")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from guanxi.features.coded import read_truth_ties
    from guanxi.features.datasets import load_coded
    from guanxi.features.summary import build_features, summarize

    start = time.perf_counter()
    print(f"reading {args.data} as codes ...", flush=True)
    data = load_coded(args.data)
    print(f"  read in {time.perf_counter() - start:.1f}s", flush=True)
    truth = read_truth_ties(args.data, data) if Path(args.data).is_dir() else None
    feats = build_features(data, truth_ties=truth, stage=lambda name: print(f"  {name} ...", flush=True))
    summary = summarize(data, feats, time.perf_counter() - start)
    _print_summary(summary)
    if args.json:
        write_json(args.json, summary)
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from guanxi.features.datasets import load_raw_split, splits_root
    from guanxi.features.load_split import write_split_dir

    out = Path(args.out) if args.out else splits_root() / args.name
    dataset = load_raw_split(args.name)
    write_split_dir(dataset, out)
    print(f"{args.name}: train {len(dataset.train)}, test {len(dataset.test)} events -> {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    world_dir = out / "world"
    uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    print(f"1/5 generating a synthetic world of {args.users} users in {world_dir}")
    _cmd_world(argparse.Namespace(users=args.users, seed=args.seed, out=world_dir))
    print("2/5 building tie strength, circles and the graph")
    _cmd_features(argparse.Namespace(data=str(world_dir), json=str(out / "features.json")))
    print(f"3/5 training guanxi (at most {args.time_budget:.0f}s), tracking in {uri}")
    _cmd_train(argparse.Namespace(
        data=str(world_dir), from_run=None, model="guanxi", config=None, set=[],
        time_budget=args.time_budget, metrics_json=str(out / "metrics.json"), no_track=False,
        tracking_uri=uri, experiment=None, register=True, tag=["demo=1"], no_progress=False,
        events_db=str(out / "events.db")))
    from guanxi.bundle import load_bundle
    from guanxi.registry import alias_version, download_bundle, use_tracking
    from guanxi.serving.recommender import Recommender

    use_tracking(uri)
    version = alias_version("candidate")
    _promote_checked(version, str(out / "events.db"))
    print(f"4/5 promoted guanxi version {version} to @champion; a few recommendations from it:")
    bundle = load_bundle(download_bundle("models:/guanxi@champion", out / "champion"))
    rec = Recommender(bundle)
    kinds = dict(zip(bundle.items["item_id"].astype(str), bundle.items["kind"]))
    for user in ("u1", "u2"):
        ranked, fallback = rec.rank(user, 5)
        items = ", ".join(f"{bundle.idmap.item_ids[i]} ({kinds[str(bundle.idmap.item_ids[i])]})" for i, _ in ranked)
        print(f"  {user}{' [' + fallback + ']' if fallback else ''}: {items}")
    print(f"Browse the run: .venv/bin/mlflow ui --backend-store-uri {uri}")
    if args.no_serve:
        return 0
    from guanxi.serving.launch import serve_foreground, server_env

    print(f"5/5 serving the champion on http://127.0.0.1:{args.port}")
    env = server_env(tracking_uri=uri, events_db=str(out / "events.db"))
    return serve_foreground("127.0.0.1", args.port, env, user_id="u1")


def _cmd_train(args: argparse.Namespace) -> int:
    from guanxi.features.datasets import load_dataset
    from guanxi.training.config import load_config
    from guanxi.training.metrics import metric_keys
    from guanxi.registry import use_tracking
    from guanxi.training.tracking import log_training
    from guanxi.training.train import train

    overrides = []
    if args.from_run:
        import mlflow

        use_tracking(args.tracking_uri)
        params = mlflow.get_run(args.from_run).data.params
        args.data = args.data or params.pop("data")
        params.pop("data", None)
        overrides += [f"{k}={v}" for k, v in sorted(params.items())]
        print(f"rebuilding run {args.from_run}: data {args.data}, config from its params")
    if not args.data:
        raise ValueError("--data is required (or --from-run RUN_ID)")
    overrides += list(args.set or [])
    if args.model:
        overrides.append(f"model={args.model}")
    if args.time_budget is not None:
        overrides.append(f"time_budget={args.time_budget}")
    config = load_config(args.config, overrides)
    if args.register and config.model in ITEM_MODELS:
        raise ValueError(f"--register: {config.model} is a comparison baseline (item-item scores, no embeddings); "
                         "it cannot be served, so it is not registered")
    dataset = _without_forgotten(load_dataset(args.data), args)
    from guanxi.features.dense_core import density

    print(f"training {config.model} on {dataset.name}: {len(dataset.users)} users, "
          f"{len(dataset.items)} items, {len(dataset.train)} training events")
    from guanxi.training import distributed

    rank = int(os.environ.get("RANK", "0"))
    from guanxi.features.world_intent import read_intent_truth

    truth = read_intent_truth(args.data) if Path(str(args.data)).is_dir() else None
    result = train(dataset, config, progress=not args.no_progress and rank == 0, intent_truth=truth)
    ctx = distributed.current()
    if not ctx.is_main:                       # under torchrun only rank 0 reports, logs and writes
        distributed.shutdown(ctx)
        return 0
    m = result.metrics
    payload = {k: m[k] for k in metric_keys()}
    payload.update({"valid": m["valid"], "breakdowns": m.get("breakdowns", {}), "processes": ctx.world_size,
                    "train_seconds": round(result.train_seconds, 2), "epochs": result.epochs,
                    "best_epoch": result.best_epoch, "stopped": result.stopped,
                    "seconds_to_best": round(result.seconds_to_best, 2), "history": result.history,
                    "model": config.model, "dataset": dataset.name, "data": density(dataset),
                    "config": config.to_dict()})
    if "support" in m:                        # the social-support weight validation chose, and its grid
        payload["support"] = m["support"]
    if "intent" in m:                         # the intent fit, and against a world's truth how it does
        payload["intent"] = m["intent"]
    print("test " + "  ".join(f"{k} {m[k]:.4f}" for k in metric_keys())
          + f"  ({result.epochs} epochs, best {result.best_epoch}, {result.train_seconds:.0f}s, {result.stopped})")
    if not args.no_track:
        uri = use_tracking(args.tracking_uri)
        tags = dict(t.partition("=")[::2] for t in (args.tag or []))
        info = log_training(result, config, args.experiment or dataset.name, args.register,
                            str(args.data), tags)
        payload["mlflow"] = {"tracking_uri": uri, **info}
        print(f"MLflow run {info['run_id']} in experiment '{args.experiment or dataset.name}' ({uri})"
              + (f"; registered as guanxi version {info['version']} @candidate" if info["version"] else ""))
    if args.metrics_json:
        write_json(args.metrics_json, payload)
    distributed.shutdown(ctx)
    return 0


def _without_forgotten(dataset, args: argparse.Namespace):
    """``dataset`` less the users on the forget list: whoever asked to be forgotten stays out of
    every model. Registering needs the list (``guanxi.app.erasure.forget_list_for``); a run that
    registers nothing uses it when the log is found."""
    from guanxi.app.erasure import forget_list_for
    from guanxi.features.datasets import without_users

    try:
        forget, where = forget_list_for(getattr(args, "events_db", None), "guanxi train --register")
    except ValueError:
        if args.register and not args.no_track:
            raise
        return dataset
    dataset, gone = without_users(dataset, forget.mask)
    if gone:
        print(f"left out {gone} users who asked to be forgotten (the forget list in {where})")
    return dataset


def _promote_checked(version: str, events_db: str | None) -> None:
    """Move @champion to ``version`` once it is shown to hold nobody on the forget list."""
    from guanxi.app.erasure import check_version_free, forget_list_for
    from guanxi.registry import promote

    forget, _ = forget_list_for(events_db, "guanxi promote")
    promote(version, check=lambda v: check_version_free(forget, v))


def _cmd_promote(args: argparse.Namespace) -> int:
    from guanxi.registry import use_tracking

    use_tracking(args.tracking_uri)
    _promote_checked(args.version, args.events_db)
    print(f"guanxi version {args.version} is now @champion")
    return 0


def _print_summary(summary: dict) -> None:
    ts = summary.get("tie_strength", {})
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if key == "tie_strength":
            continue
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {text}")
    rho = ts.get("spearman_truth")
    print(f"  tie strength ({ts.get('label')}): ROC-AUC {ts.get('auc', float('nan')):.3f} vs best "
          f"single feature {ts.get('heuristic')} {ts.get('heuristic_auc', float('nan')):.3f}"
          + (f"; Spearman with true strength {rho:.3f}" if rho is not None else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guanxi", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", help="generate a synthetic WeChat-like world (Parquet)")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory (replaced atomically)")
    p.add_argument("--version", type=int, default=1, choices=[1, 2],
                   help="generator version: 2 adds intent truth (economic propensity, intent episodes)")
    p.add_argument("--no-episodes", action="store_true",
                   help="version 2 without intent episodes: every user one fixed mix (the control)")
    p.set_defaults(func=_cmd_world)

    p = sub.add_parser("features", help="tie strength, circles and graph of a dataset; print a summary")
    p.add_argument("--data", required=True, help="world dir, split dir, or a named set: " + "|".join(NAMED_SETS))
    p.add_argument("--json", help="also write the summary here")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("split", help="write the protocol's 80/20 per-user split of a raw set")
    p.add_argument("name", choices=list(NAMED_SETS))
    p.add_argument("--out", help="default experiments/splits/NAME")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("train", help="train a model, evaluate on the test split, track in MLflow")
    p.add_argument("--data", help="world dir, split dir, or a named set: " + "|".join(NAMED_SETS))
    p.add_argument("--from-run", metavar="RUN_ID", help="rebuild an MLflow run: its data and resolved config")
    p.add_argument("--model", choices=list(MODELS))
    p.add_argument("--config", help="YAML config (keys as in training/default.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--metrics-json", help="write test metrics (and valid, breakdowns, ...) here")
    p.add_argument("--time-budget", type=float, help="seconds of training before stopping early")
    p.add_argument("--experiment", help="MLflow experiment (default: the dataset's name)")
    p.add_argument("--register", action="store_true", help="register the model as guanxi @candidate")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag the MLflow run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--events-db", help="event log whose forget list applies (default $GUANXI_EVENTS_DB, else "
                                       "events.db, which --register needs to exist: it never publishes a model "
                                       "without the forget list)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("promote", help="move the @champion alias to a registered version")
    p.add_argument("version")
    p.add_argument("--tracking-uri")
    p.add_argument("--events-db", help="the service's event log, whose forget list the version must pass "
                   "(default $GUANXI_EVENTS_DB, else events.db, which must then exist)")
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("demo", help="the main job on the embedded default (a synthetic world)")
    p.add_argument("--users", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=".demo")
    p.add_argument("--time-budget", type=float, default=120.0, help="seconds of training")
    p.add_argument("--no-serve", action="store_true", help="stop after promoting (do not serve)")
    p.add_argument("--port", type=int, default=3000, help="serve the champion here (127.0.0.1)")
    p.set_defaults(func=_cmd_demo)

    from guanxi.app.serve_commands import add_parsers as add_serving
    from guanxi.app.ops import add_parsers as add_ops
    from guanxi.app.bento_build import add_parsers as add_build
    from guanxi.app.pathways_command import add_parsers as add_pathways

    add_serving(sub)
    add_ops(sub)
    add_build(sub)
    add_pathways(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from guanxi.features.schema import SchemaError

    try:
        return int(args.func(args) or 0)
    except (SchemaError, ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as exc:
        print(f"guanxi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a server that would not start
        print(f"guanxi {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"guanxi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
