"""``guanxi build``: a shippable Bento of the service with one registered model version inside.

1. The version the model URI names (default ``models:/guanxi@champion``) is resolved and its bundle
   imported into the BentoML model store as ``guanxi:<tag>``, labelled with the registry version and
   run it came from (a version imported before is reused, not copied again).
2. The Bento is built from ``bentofile.yaml`` with that model added, so ``bentoml serve guanxi:<bento
   tag>`` serves it with no MLflow registry at hand. Its build context is a staged copy of the
   imported ``guanxi`` package laid out by import name (:mod:`guanxi.app.package_tree`): in a
   checkout the layers are top-level folders mapped into the namespace, which a build context
   copied as files would not see as ``guanxi.*``; the bentofile's ``include`` then picks serving's
   files from it.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from guanxi.app.package_tree import installed_folders, stage_package

REPO = Path(__file__).resolve().parents[1]           # the checkout (bentofile.yaml's home)


def import_model(model_uri: str, tracking_uri: str | None = None) -> str:
    """Import the bundle of ``model_uri`` into the BentoML model store; returns the model's tag.

    Raises:
        ValueError: the URI does not resolve or carries no bundle.
    """
    import bentoml
    import mlflow

    from guanxi.registry import download_bundle, use_tracking
    from guanxi.serving.champion import BENTO_MODEL_NAME, resolve_version

    uri = use_tracking(tracking_uri)
    version = resolve_version(model_uri, uri)
    fetch = f"models:/guanxi/{version}" if version.isdigit() else model_uri
    run_id = ""
    if version.isdigit():
        run_id = mlflow.MlflowClient(uri, uri).get_model_version("guanxi", version).run_id or ""
    try:
        imported = bentoml.models.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:
        imported = []
    for existing in imported:
        labels = existing.info.labels
        if labels.get("registered_version") == version and labels.get("run_id") == run_id and run_id:
            return str(existing.tag)
    with tempfile.TemporaryDirectory(prefix="guanxi-build-") as tmp:
        bundle = download_bundle(fetch, Path(tmp) / "dl", uri)
        with bentoml.models.create(BENTO_MODEL_NAME, labels={"registered_version": version, "run_id": run_id},
                                   metadata={"source": fetch, "tracking_uri": str(uri)}) as model:
            shutil.copytree(bundle, model.path_of("bundle"))
    return str(model.tag)


def build_bento(model_uri: str, tracking_uri: str | None = None, bentofile: str | Path | None = None,
                version: str | None = None) -> tuple[str, str]:
    """Import the model and build the Bento; returns ``(bento tag, model tag)``.

    Raises:
        ValueError: the model URI does not resolve, or the bentofile is missing.
    """
    import bentoml
    import yaml

    path = Path(bentofile) if bentofile else REPO / "bentofile.yaml"
    if not path.is_file():
        raise ValueError(f"no bentofile at {path}")
    model_tag = import_model(model_uri, tracking_uri)
    spec = yaml.safe_load(path.read_text())
    spec["models"] = [*spec.get("models", []), model_tag]
    spec["labels"] = {**spec.get("labels", {}), "model": model_tag}
    service = spec.pop("service")
    spec.pop("name", None)
    with tempfile.TemporaryDirectory(prefix="guanxi-build-ctx-") as build_ctx:
        stage_package(installed_folders(), build_ctx)
        bento = bentoml.bentos.build(service, name="guanxi", version=version, build_ctx=build_ctx, **spec)
    return str(bento.tag), model_tag


def cmd_build(args: argparse.Namespace) -> int:
    bento, model = build_bento(args.model_uri, args.tracking_uri, args.bentofile, args.version)
    print(f"built Bento {bento} with model {model}\n"
          f"  serve it:        bentoml serve {bento} --port 3000\n"
          f"  make an image:   bentoml containerize {bento}   (needs Docker)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a shippable Bento of the service with a registered model inside")
    p.add_argument("--model-uri", default="models:/guanxi@champion",
                   help="the version to ship (default models:/guanxi@champion)")
    p.add_argument("--tracking-uri")
    p.add_argument("--bentofile", help="default: bentofile.yaml at the repository root")
    p.add_argument("--version", help="the Bento's version (default: generated)")
    p.set_defaults(func=cmd_build)
