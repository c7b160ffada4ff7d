"""``guanxi serve`` and ``guanxi evaluate`` (registered by :mod:`guanxi.app.cli`)."""
from __future__ import annotations

import argparse


def cmd_serve(args: argparse.Namespace) -> int:
    from guanxi.serving.launch import check_exposure, serve_foreground, server_env

    env = server_env(model_uri=args.model_uri, tracking_uri=args.tracking_uri, events_db=args.events_db,
                     policy=args.policy, workers=args.workers, poll_seconds=args.poll_seconds)
    if args.insecure:
        env["GUANXI_INSECURE"] = "1"        # the workers' own check (serving/guard.py) follows it too
    check_exposure(args.host, env, args.insecure)
    if args.policy:
        from guanxi.serving.policy import load_policy

        load_policy(args.policy)  # a bad policy file fails here, not in every worker
    return serve_foreground(args.host, args.port, env)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from guanxi.features.datasets import load_dataset
    from guanxi.serving.champion import load_served
    from guanxi.serving.policy import load_policy
    from guanxi.app.policy_cost import format_cost, policy_cost
    from guanxi.registry import use_tracking

    use_tracking(args.tracking_uri)
    policy = load_policy(args.policy)
    served = load_served(args.model_uri)
    dataset = load_dataset(args.data)
    print(f"model {args.model_uri} (version {served.version}) on the test split of {dataset.name}")
    result = policy_cost(served.recommender, dataset, policy, progress=not args.no_progress)
    result.update({"model_uri": args.model_uri, "model_version": served.version, "dataset": dataset.name,
                   "policy": policy.to_dict()})
    print(format_cost(result))
    if args.json:
        from guanxi.features.json_file import write_json

        write_json(args.json, result)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the champion over HTTP (BentoML) until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--model-uri", help="default models:/guanxi@champion ($GUANXI_MODEL_URI)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")
    p.add_argument("--events-db", help="event log: a SQLite file or a postgresql:// URL (default events.db, "
                   "$GUANXI_EVENTS_DB)")
    p.add_argument("--policy", help="policy YAML overriding serving/policy.yaml ($GUANXI_POLICY)")
    p.add_argument("--workers", type=int, help="worker processes (default 1, $GUANXI_WORKERS)")
    p.add_argument("--poll-seconds", type=float,
                   help="how often workers check the alias and the forget list (default 10)")
    p.add_argument("--insecure", action="store_true",
                   help="serve a non-loopback --host without GUANXI_API_TOKEN (open to anyone who can reach it)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("evaluate", help="what the exposure policy costs: test metrics with it on and off")
    p.add_argument("--data", required=True, help="world dir, split dir or named set with a test split")
    p.add_argument("--model-uri", default="models:/guanxi@champion")
    p.add_argument("--tracking-uri")
    p.add_argument("--policy", help="policy YAML overriding serving/policy.yaml")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)
