"""Erasure beyond the event log: which registered versions, cached bundles, BentoML models and
built Bentos still hold users who asked to be forgotten, and removing them (``guanxi status``,
``guanxi forget --purge-versions``); and the forget list every command that publishes a model
must honour (``guanxi train --register``, ``promote``, ``rollback``).

A version "holds" a user when the user is in its id map: its embeddings, history and circles were
built from them. The next ``guanxi retrain`` publishes a scrubbed version (erasure overrides the
gate); older versions are then purged: their artifacts deleted, the version tagged ``purged`` (it
stays listed, so the registry's history stays readable), and ``promote``/``rollback`` refuse it.

A purge finds copies by what they hold, not by where it runs: every serving cache root the
account's workers recorded (:func:`guanxi.serving.model_cache.known_roots`), the BentoML model
store and the Bentos built from it (``BENTOML_HOME``). Whatever it cannot read it reports, and
the purge then fails (exit status 2) after removing what it could: a transient artifact error
never reads as "nothing to purge".
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from guanxi.features.ids import IdMap
from guanxi.registry import BUNDLE_IN_MODEL, MODEL_NAME, PURGED_TAG
from guanxi.serving.forget_list import ForgetList


@dataclass
class Holdings:
    """What still holds forgotten users: ``rows`` (each with ``users``) and what could not be read."""

    rows: list[dict] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def forget_list_for(events_db: str | None, what: str) -> tuple[ForgetList, str]:
    """The forget list a command that publishes a model must honour, and its log as printed.

    Args:
        events_db: ``--events-db`` as given (None: ``$GUANXI_EVENTS_DB``, else ``./events.db``).
        what: the command, for the error.

    A log named by the flag or the variable is opened (created when missing: a new deployment's
    log starts empty); an unnamed one is used only when ``./events.db`` exists.

    Raises:
        ValueError: no log was named and ``./events.db`` does not exist: the command would publish
            without knowing who asked to be forgotten.
    """
    from guanxi.serving.event_stores import open_event_store, parse_event_log

    named = events_db or os.environ.get("GUANXI_EVENTS_DB") or None
    target = parse_event_log(named or "events.db")
    if named is None and not target.exists():
        raise ValueError(f"{what}: no event log at {Path('events.db').resolve()} to read the forget list from, so "
                         "users who asked to be forgotten could be published again; pass --events-db PATH|URL "
                         "(or set GUANXI_EVENTS_DB) naming the service's log (a new deployment's is created empty)")
    store = open_event_store(target.resolved())
    try:
        return store.forget_list(), str(target)
    finally:
        store.close()


def version_idmap(client: mlflow.MlflowClient, version: str) -> IdMap:
    """The id map of a registered version (only that file is downloaded)."""
    root = client.get_model_version_download_uri(MODEL_NAME, version)
    with tempfile.TemporaryDirectory(prefix="guanxi-idmap-") as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{root}/{BUNDLE_IN_MODEL}/idmap.json", dst_path=tmp)
        return IdMap.load(Path(path))


def check_version_free(forget: ForgetList, version: str, client: mlflow.MlflowClient | None = None) -> None:
    """Raise ``ValueError`` when registered ``version`` holds forgotten users, or when its id map
    cannot be read to tell (a version that cannot be checked is not published)."""
    if not len(forget):
        return
    client = client or mlflow.MlflowClient()
    try:
        users = int(forget.mask(version_idmap(client, str(version)).user_ids.astype(str)).sum())
    except (mlflow.exceptions.MlflowException, OSError, ValueError) as exc:
        raise ValueError(f"cannot read v{version}'s id map to check it against the forget list: {exc}") from exc
    if users:
        raise ValueError(f"v{version} holds {users} users who asked to be forgotten: it cannot serve; "
                         "`guanxi retrain` publishes a scrubbed version")


def versions_holding(forget: ForgetList, client: mlflow.MlflowClient | None = None) -> Holdings:
    """Versions not yet purged whose id map holds forgotten users (``{"version", "users", "aliases"}``),
    and the versions whose id map could not be read."""
    client = client or mlflow.MlflowClient()
    out = Holdings()
    if not len(forget):
        return out
    for mv in client.search_model_versions(f"name='{MODEL_NAME}'"):
        if mv.tags.get(PURGED_TAG):
            continue
        try:
            users = int(forget.mask(version_idmap(client, str(mv.version)).user_ids.astype(str)).sum())
        except (mlflow.exceptions.MlflowException, OSError, ValueError) as exc:
            out.unreadable.append(f"registered v{mv.version}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        if users:                        # (search results leave aliases out: read the version itself)
            aliases = list(client.get_model_version(MODEL_NAME, str(mv.version)).aliases)
            out.rows.append({"version": str(mv.version), "users": users, "aliases": aliases})
    out.rows.sort(key=lambda row: int(row["version"]))
    return out


def _bundles_under(root: Path, forget: ForgetList, out: Holdings, what: str) -> None:
    for idmap in sorted(root.glob("**/bundle/idmap.json")) if root.is_dir() else []:
        try:
            users = int(forget.mask(IdMap.load(idmap).user_ids.astype(str)).sum())
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            out.unreadable.append(f"{what} {idmap}: {type(exc).__name__}: {exc}")
            continue
        if users:
            out.rows.append({"path": str(idmap.parent.parent), "users": users})


def cached_bundles_holding(forget: ForgetList, roots: list[Path] | None = None) -> Holdings:
    """Cached bundle folders (``{"path", "users"}``) whose id map holds forgotten users, in every
    cache root the account's workers used (or ``roots``)."""
    from guanxi.serving.model_cache import known_roots

    out = Holdings()
    if len(forget):
        for root in roots if roots is not None else known_roots():
            _bundles_under(root, forget, out, "cached bundle")
    return out


def bento_store_holding(forget: ForgetList) -> Holdings:
    """BentoML models (``{"model", "users"}``) and built Bentos (``{"bento", "users", "models"}``)
    holding forgotten users, in the BentoML home of this process (``BENTOML_HOME``)."""
    out = Holdings()
    if not len(forget):
        return out
    import bentoml

    from guanxi.serving.champion import BENTO_MODEL_NAME

    held: dict[str, int] = {}
    try:
        models = bentoml.models.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:
        models = []
    for model in models:
        found = Holdings()
        _bundles_under(Path(model.path), forget, found, f"BentoML model {model.tag}")
        out.unreadable += found.unreadable
        if found.rows:
            held[str(model.tag)] = sum(r["users"] for r in found.rows)
            out.rows.append({"model": str(model.tag), "users": held[str(model.tag)]})
    for bento in bentoml.bentos.list():
        inside = Holdings()
        _bundles_under(Path(bento.path) / "models", forget, inside, f"Bento {bento.tag}")
        out.unreadable += inside.unreadable
        tags = [str(m.tag) for m in bento.info.all_models]
        users = sum(r["users"] for r in inside.rows) + sum(held.get(t, 0) for t in tags)
        if users:
            out.rows.append({"bento": str(bento.tag), "users": users, "models": tags})
    return out


def purge(forget: ForgetList, client: mlflow.MlflowClient | None = None,
          roots: list[Path] | None = None) -> dict:
    """Delete every copy holding forgotten users: registered versions' artifacts (each tagged
    ``purged``), cached bundles, BentoML models and the Bentos built with them.

    Raises:
        ValueError: @champion still holds forgotten users (``guanxi retrain`` publishes a scrubbed
            version first; nothing is purged until then); or, after everything readable was
            purged, something could not be read (listed in the message).
    """
    import bentoml

    client = client or mlflow.MlflowClient()
    versions = versions_holding(forget, client)
    for row in versions.rows:
        if "champion" in row["aliases"]:
            raise ValueError(f"v{row['version']} is @champion and holds {row['users']} forgotten users: run "
                             "`guanxi retrain` first (erasure makes it publish and promote a scrubbed version)")
    for row in versions.rows:
        get_artifact_repository(client.get_model_version_download_uri(MODEL_NAME, row["version"])).delete_artifacts()
        client.set_model_version_tag(MODEL_NAME, row["version"], PURGED_TAG,
                                     f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: held {row['users']} "
                                     "forgotten users; artifacts deleted")
        for alias in row["aliases"]:
            client.delete_registered_model_alias(MODEL_NAME, alias)
    cached = cached_bundles_holding(forget, roots)
    for row in list(cached.rows):
        try:
            shutil.rmtree(row["path"])
        except OSError as exc:                  # another account's cache: reported, never skipped quietly
            cached.rows.remove(row)
            cached.unreadable.append(f"cached bundle {row['path']} (could not delete): {exc}")
    store = bento_store_holding(forget)
    for row in store.rows:                      # Bentos first: a Bento refers to its models
        if "bento" in row:
            bentoml.bentos.delete(row["bento"])
    for row in store.rows:
        if "model" in row:
            bentoml.models.delete(row["model"])
    unreadable = versions.unreadable + cached.unreadable + store.unreadable
    done = {"versions": versions.rows, "cached": cached.rows, "bentoml": store.rows, "unreadable": unreadable}
    if unreadable:
        raise ValueError(f"purged {len(versions.rows)} versions, {len(cached.rows)} cached bundles and "
                         f"{len(store.rows)} BentoML models or Bentos, but could not read {len(unreadable)} "
                         "copies to tell whether they hold forgotten users (nothing was assumed): "
                         + "; ".join(unreadable[:5]) + " — fix access and run the purge again")
    return done
