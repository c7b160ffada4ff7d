"""MLflow: tracking URI, the logged model that carries the bundle, and the registry.

Registered model name ``guanxi``; aliases ``candidate`` (set by ``--register``) and ``champion``
(moved only by ``guanxi promote``). Serving resolves ``models:/guanxi@champion``.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
from pathlib import Path
from typing import Callable

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

logger = logging.getLogger(__name__)

MODEL_NAME = "guanxi"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# A version tagged so held users who asked to be forgotten; its artifacts are gone (app/erasure.py).
PURGED_TAG = "purged"
# Where a logged model keeps its bundle directory (erasure and serving caches look for it there).
BUNDLE_IN_MODEL = "artifacts/bundle"
# The module that makes a logged bundle a pyfunc ranker: named, not imported, since the registry
# sits below serving (``mlflow.pyfunc.load_model`` imports it when a model is loaded).
PYFUNC_RANKER = "guanxi.serving.pyfunc"


def tracking_uri(explicit: str | None = None) -> str:
    """``explicit``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working dir."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def use_tracking(explicit: str | None = None) -> str:
    """Point MLflow at the tracking store (called by the CLI, never at import)."""
    uri = tracking_uri(explicit)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


class BundleModel(PythonModel):
    """The pyfunc face of a logged bundle: ``predict`` takes a frame with ``user_id`` (and optional
    ``k``) and returns ``user_id, item_id, rank, score`` rows (:mod:`guanxi.serving.pyfunc`)."""

    def load_context(self, context) -> None:  # noqa: D401 - MLflow hook
        self.ranker = importlib.import_module(PYFUNC_RANKER).BundlePyfunc(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.ranker.predict(model_input, params)


def log_bundle_model(bundle_dir: Path) -> str:
    """Log the bundle as the run's pyfunc model named ``model``; returns its model URI.

    The bundle lands at :data:`BUNDLE_IN_MODEL` whatever its folder is called (MLflow keeps the
    folder's name), since erasure and serving caches read it there."""
    import shutil
    import tempfile

    bundle_dir = Path(bundle_dir)
    with tempfile.TemporaryDirectory(prefix="guanxi-log-") as tmp:
        if bundle_dir.name != Path(BUNDLE_IN_MODEL).name:
            bundle_dir = Path(shutil.copytree(bundle_dir, Path(tmp) / Path(BUNDLE_IN_MODEL).name))
        info = mlflow.pyfunc.log_model(name="model", python_model=BundleModel(),
                                       artifacts={"bundle": str(bundle_dir)})
    return info.model_uri


def register_candidate(model_uri: str, run_id: str) -> str:
    """Register ``model_uri`` as a new version of ``guanxi`` with alias ``candidate``."""
    version = mlflow.register_model(model_uri, MODEL_NAME, tags={"run_id": run_id})
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, "candidate", version.version)
    logger.info("registered %s version %s as @candidate", MODEL_NAME, version.version)
    return str(version.version)


def promote(version: str, check: Callable[[str], None] | None = None) -> None:
    """Move ``@champion`` to ``version`` and append it to the champion history (for rollback).

    Args:
        version: the registered version.
        check: called with the version before anything moves; raises to refuse it (the
            application's forget-list check).

    Raises:
        ValueError: no such version, purged, or refused by ``check``.
    """
    client = mlflow.MlflowClient()
    _refuse_purged(client, str(version))
    if check is not None:
        check(str(version))
    history = champion_history()
    if not history or history[-1] != str(version):
        history.append(str(version))
    client.set_registered_model_tag(MODEL_NAME, "champion_history", ",".join(history[-50:]))
    client.set_registered_model_alias(MODEL_NAME, "champion", str(version))


def _refuse_purged(client: mlflow.MlflowClient, version: str) -> None:
    """Raise ``ValueError`` for a version that does not exist or was purged."""
    try:
        mv = client.get_model_version(MODEL_NAME, version)
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"no version {version!r} of registered model {MODEL_NAME!r}") from exc
    if mv.tags.get(PURGED_TAG):
        raise ValueError(f"v{version} was purged ({mv.tags[PURGED_TAG]}): it cannot serve again; "
                         "promote a newer version")


def champion_history() -> list[str]:
    """Versions that were @champion, oldest first (the registered model's ``champion_history`` tag)."""
    client = mlflow.MlflowClient()
    try:
        tags = client.get_registered_model(MODEL_NAME).tags
    except mlflow.exceptions.MlflowException:
        return []
    return [v for v in tags.get("champion_history", "").split(",") if v]


def rollback(check: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Move ``@champion`` back to the version that held it before; returns ``(from, to)``.
    ``check`` is called with that version first and raises to refuse it (as in :func:`promote`).

    Raises:
        ValueError: there is no earlier champion to go back to, or it is purged or refused.
    """
    client = mlflow.MlflowClient()
    current = alias_version("champion")
    history = champion_history()
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise ValueError(f"no earlier champion to roll back to (champion is {current})")
    target = history[-1]
    _refuse_purged(client, target)
    if check is not None:
        check(target)
    client.set_registered_model_tag(MODEL_NAME, "champion_history", ",".join(history))
    client.set_registered_model_alias(MODEL_NAME, "champion", target)
    return str(current), target


def _artifact_location(model_uri: str, tracking_uri: str | None) -> str:
    """``models:/NAME/V`` or ``models:/NAME@ALIAS`` as the artifact location in ``tracking_uri``'s
    registry (MLflow's ``models:/`` resolver reads only the process-wide registry URI)."""
    m = re.match(r"^models:/([^/@]+)(?:/(\d+)|@([^/]+))$", model_uri)
    if tracking_uri is None or m is None:
        return model_uri
    client = mlflow.MlflowClient(tracking_uri, tracking_uri)
    version = m[2] or client.get_model_version_by_alias(m[1], m[3]).version
    return client.get_model_version_download_uri(m[1], str(version))


def alias_version(alias: str) -> str | None:
    client = mlflow.MlflowClient()
    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def download_bundle(model_uri: str, dst: str | Path | None = None, tracking_uri: str | None = None) -> Path:
    """Fetch the bundle directory of a logged or registered model (``models:/guanxi@champion``).

    ``tracking_uri`` pins the store (default: the one set by :func:`use_tracking`).

    Raises:
        ValueError: the URI does not resolve or carries no bundle.
    """
    try:
        model_uri = _artifact_location(model_uri, tracking_uri)
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(dst) if dst else None,
            tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"cannot fetch {model_uri}: {exc}") from exc
    found = list(local.rglob("bundle.json"))
    if not found:
        raise ValueError(f"{model_uri}: no recommendation bundle inside")
    return found[0].parent
