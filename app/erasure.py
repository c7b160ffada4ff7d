"""Erasure beyond the event log: which registered versions and cached bundles still hold users who
asked to be forgotten, and removing them (``guanxi status``, ``guanxi forget --purge-versions``).

A version "holds" a user when the user is in its id map: its embeddings, history and circles were
built from them. The next ``guanxi retrain`` publishes a scrubbed version (erasure overrides the
gate); older versions are then purged: their artifacts deleted, the version tagged ``purged`` (it
stays listed, so the registry's history stays readable), and ``promote``/``rollback`` refuse it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from guanxi.features.ids import IdMap
from guanxi.serving.forget_list import ForgetList
from guanxi.registry import BUNDLE_IN_MODEL, MODEL_NAME, PURGED_TAG



def version_idmap(client: mlflow.MlflowClient, version: str) -> IdMap:
    """The id map of a registered version (only that file is downloaded)."""
    root = client.get_model_version_download_uri(MODEL_NAME, version)
    with tempfile.TemporaryDirectory(prefix="guanxi-idmap-") as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/{BUNDLE_IN_MODEL}/idmap.json", dst_path=tmp)
        return IdMap.load(Path(path))


def versions_holding(forget: ForgetList, client: mlflow.MlflowClient | None = None) -> list[dict]:
    """``[{"version", "users", "aliases"}]``: versions not yet purged whose id map holds forgotten users."""
    client = client or mlflow.MlflowClient()
    if not len(forget):
        return []
    out = []
    for mv in client.search_model_versions(f"name='{MODEL_NAME}'"):
        if mv.tags.get(PURGED_TAG):
            continue
        try:
            users = int(forget.mask(version_idmap(client, str(mv.version)).user_ids.astype(str)).sum())
        except (mlflow.exceptions.MlflowException, OSError, ValueError):
            continue                     # no bundle to read: nothing this check can hold against it
        if users:                        # (search results leave aliases out: read the version itself)
            aliases = list(client.get_model_version(MODEL_NAME, str(mv.version)).aliases)
            out.append({"version": str(mv.version), "users": users, "aliases": aliases})
    return sorted(out, key=lambda row: int(row["version"]))


def cache_roots(tracking_uri: str | None = None) -> list[Path]:
    """Where this registry's serving workers keep downloaded bundles: ``$GUANXI_MODEL_CACHE``, else
    the default cache folder of ``tracking_uri`` (:func:`guanxi.serving.champion.default_cache_dir`)."""
    from guanxi.serving.champion import default_cache_dir

    if os.environ.get("GUANXI_MODEL_CACHE"):
        return [Path(os.environ["GUANXI_MODEL_CACHE"])]
    return [default_cache_dir(tracking_uri or mlflow.get_tracking_uri())]


def cached_bundles_holding(forget: ForgetList, roots: list[Path] | None = None) -> list[dict]:
    """``[{"path", "users"}]``: cached bundle folders whose id map holds forgotten users."""
    if not len(forget):
        return []
    out = []
    for root in roots or cache_roots():
        for idmap in sorted(root.glob("**/bundle/idmap.json")) if root.is_dir() else []:
            try:
                users = int(forget.mask(IdMap.load(idmap).user_ids.astype(str)).sum())
            except (OSError, ValueError, json.JSONDecodeError):
                continue
            if users:
                out.append({"path": str(idmap.parent.parent), "users": users})
    return out


def purge(forget: ForgetList, client: mlflow.MlflowClient | None = None,
          roots: list[Path] | None = None) -> dict:
    """Delete the artifacts of every version holding forgotten users (tagging it ``purged``) and
    every cached bundle holding them.

    Raises:
        ValueError: @champion still holds forgotten users (``guanxi retrain`` publishes a scrubbed
            version first; nothing is purged until then).
    """
    client = client or mlflow.MlflowClient()
    holding = versions_holding(forget, client)
    for row in holding:
        if "champion" in row["aliases"]:
            raise ValueError(f"v{row['version']} is @champion and holds {row['users']} forgotten users: run "
                             "`guanxi retrain` first (erasure makes it publish and promote a scrubbed version)")
    for row in holding:
        get_artifact_repository(client.get_model_version_download_uri(MODEL_NAME, row["version"])).delete_artifacts()
        client.set_model_version_tag(MODEL_NAME, row["version"], PURGED_TAG,
                                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: held {row['users']} "
                                     "forgotten users; artifacts deleted")
        for alias in row["aliases"]:
            client.delete_registered_model_alias(MODEL_NAME, alias)
    cached = cached_bundles_holding(forget, roots)
    for row in cached:
        shutil.rmtree(row["path"], ignore_errors=True)
    return {"versions": holding, "cached": cached}
