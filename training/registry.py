"""MLflow: tracking URI, the logged pyfunc model that carries the bundle, and the registry.

Registered model name ``guanxi``; aliases ``candidate`` (set by ``--register``) and ``champion``
(moved only by ``guanxi promote``). Serving resolves ``models:/guanxi@champion``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

logger = logging.getLogger(__name__)

MODEL_NAME = "guanxi"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


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
    """pyfunc wrapper of a recommendation bundle: ``predict`` takes a frame with ``user_id`` (and
    optional ``k``) and returns ``user_id, item_id, rank, score`` rows."""

    def load_context(self, context) -> None:  # noqa: D401 - MLflow hook
        from serving.recommender import Recommender
        from training.bundle import load_bundle

        self.bundle_dir = context.artifacts["bundle"]
        self.recommender = Recommender(load_bundle(self.bundle_dir))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for user_id, k in zip(model_input["user_id"].astype(str),
                              model_input.get("k", pd.Series([20] * len(model_input)))):
            for rank, (item, score) in enumerate(self.recommender.top_items(user_id, int(k))):
                rows.append({"user_id": user_id, "item_id": item, "rank": rank + 1, "score": score})
        return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])


def log_bundle_model(bundle_dir: Path) -> str:
    """Log the bundle as the run's pyfunc model named ``model``; returns its model URI."""
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


def promote(version: str) -> None:
    """Move ``@champion`` to ``version``.

    Raises:
        ValueError: no such version.
    """
    client = mlflow.MlflowClient()
    try:
        client.get_model_version(MODEL_NAME, str(version))
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"no version {version!r} of registered model {MODEL_NAME!r}") from exc
    client.set_registered_model_alias(MODEL_NAME, "champion", str(version))


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
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(dst) if dst else None,
            tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"cannot fetch {model_uri}: {exc}") from exc
    found = list(local.rglob("bundle.json"))
    if not found:
        raise ValueError(f"{model_uri}: no recommendation bundle inside")
    return found[0].parent
