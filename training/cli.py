"""The ``guanxi`` command line: one console script, one subcommand per job.

Logging is configured here and nowhere else. Errors at the boundary (bad data, bad config) print
one clear line and exit with status 2; Ctrl-C exits with 130 after the job has cleaned up.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("guanxi")


def _cmd_world(args: argparse.Namespace) -> int:
    from features.world import WorldConfig, generate_world, write_world

    start = time.perf_counter()
    world = generate_world(WorldConfig(users=args.users, seed=args.seed))
    write_world(world, args.out)
    ds = world.dataset
    print(f"world {ds.name}: {len(ds.users)} users, {len(ds.items)} items, {len(ds.ties)} ties, "
          f"{len(ds.pair_events)} pair events, train/valid/test events "
          f"{len(ds.train)}/{len(ds.valid)}/{len(ds.test)} -> {args.out} "
          f"({time.perf_counter() - start:.1f}s)")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    import pandas as pd

    from features.datasets import load_dataset
    from features.summary import summarize, timed_features

    dataset = load_dataset(args.data)
    truth = Path(args.data) / "truth" / "ties.parquet"
    truth_ties = pd.read_parquet(truth) if truth.is_file() else None
    feats, seconds = timed_features(dataset, truth_ties)
    summary = summarize(dataset, feats, seconds)
    _print_summary(summary)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from features.datasets import load_raw_split, splits_root
    from features.load_split import write_split_dir

    out = Path(args.out) if args.out else splits_root() / args.name
    dataset = load_raw_split(args.name)
    write_split_dir(dataset, out)
    print(f"{args.name}: train {len(dataset.train)}, test {len(dataset.test)} events -> {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    world_dir = out / "world"
    print(f"1/2 generating a synthetic world of {args.users} users in {world_dir}")
    _cmd_world(argparse.Namespace(users=args.users, seed=args.seed, out=world_dir))
    print("2/2 building tie strength, circles and the graph")
    return _cmd_features(argparse.Namespace(data=str(world_dir), json=str(out / "features.json")))


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
    p.set_defaults(func=_cmd_world)

    p = sub.add_parser("features", help="tie strength, circles and graph of a dataset; print a summary")
    p.add_argument("--data", required=True, help="world dir, split dir, or lastfm|lastfm-sociallgn|ciao|yelp")
    p.add_argument("--json", help="also write the summary here")
    p.set_defaults(func=_cmd_features)

    p = sub.add_parser("split", help="write the protocol's 80/20 per-user split of a raw set")
    p.add_argument("name", choices=["lastfm", "lastfm-sociallgn", "ciao", "yelp"])
    p.add_argument("--out", help="default experiments/splits/NAME")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("demo", help="the main job on the embedded default (a synthetic world)")
    p.add_argument("--users", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=".demo")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from features.schema import SchemaError

    try:
        return int(args.func(args) or 0)
    except (SchemaError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"guanxi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"guanxi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
