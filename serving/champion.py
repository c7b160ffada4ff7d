"""The served model: load it from a model URI, follow its alias, swap it without failing a request.

``models:/guanxi@champion`` (the default) is resolved to a version first and that exact version is
loaded, so a promotion between the two steps cannot mix versions. A URI that is a local bundle
directory is served as is (tests, benchmarks). ``bentoml:guanxi:TAG`` is a version imported into the
BentoML model store by ``guanxi build`` (what a built Bento serves, with no registry). A new version is loaded completely beside the old
one and swapped in with one reference assignment; a version that fails to load (corrupt,
incompatible) is refused and the old one keeps serving, with the reason kept in ``last_error``.
"""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from guanxi.serving import model_cache
from guanxi.serving.body import SlateEncoder
from guanxi.serving.recommender import Recommender
from guanxi.serving.retrieval import RetrievalConfig
from guanxi.bundle import load_bundle

logger = logging.getLogger(__name__)

BENTO_SCHEME = "bentoml:"
BENTO_MODEL_NAME = "guanxi"          # the name `guanxi build` imports versions under
_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class Served:
    """One loaded model: what answers requests, and the version it reports."""

    recommender: Recommender
    version: str
    uri: str
    download_dir: Path | None = None
    encoder: SlateEncoder = field(init=False, repr=False)    # its response bodies (built at load)

    def __post_init__(self) -> None:
        rec = self.recommender
        object.__setattr__(self, "encoder", SlateEncoder(rec.item_ids, rec.kinds, rec.commercial))


def resolve_version(uri: str, tracking_uri: str | None = None) -> str:
    """The version ``uri`` points at now: registry version number, or the URI itself.
    ``tracking_uri`` pins the registry (default: MLflow's current one).

    Raises:
        ValueError: an alias or version that does not exist.
    """
    if uri.startswith(BENTO_SCHEME):
        return _bento_model(uri)[1]
    import mlflow

    m = _ALIAS.match(uri)
    if m:
        try:
            mv = mlflow.MlflowClient(tracking_uri, tracking_uri).get_model_version_by_alias(m["name"], m["alias"])
        except mlflow.exceptions.MlflowException as exc:
            raise ValueError(f"{uri}: no such alias ({exc.message if hasattr(exc, 'message') else exc})") from exc
        return str(mv.version)
    m = _VERSION.match(uri)
    if m:
        return m["version"]
    return uri


def _fetch_shared(fetch: str, name: str, cache: Path, tracking_uri: str | None) -> Path:
    """The bundle of ``fetch`` in ``cache/v<version>``, downloaded once whichever worker comes first
    (download beside it, then an atomic rename; the loser of a race uses the winner's copy)."""
    from guanxi.registry import download_bundle

    final = cache / name
    if (final / "bundle" / "bundle.json").is_file():
        return final / "bundle"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        found = download_bundle(fetch, tmp / "dl", tracking_uri)
        found.rename(tmp / "bundle")
        (tmp / "dl").exists() and shutil.rmtree(tmp / "dl")
        try:
            tmp.rename(final)
        except OSError:                      # another worker finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "bundle"


def _cache_name(fetch: str, m: re.Match | None, version: str, tracking_uri: str | None) -> str:
    """A folder name that changes whenever the content could: version and run id (a registry at
    a reused path can hold a different model under the same version number)."""
    if m is None:
        return "u-" + hashlib.sha1(fetch.encode()).hexdigest()[:12]
    import mlflow

    try:
        run_id = mlflow.MlflowClient(tracking_uri, tracking_uri).get_model_version(m["name"], version).run_id or ""
    except mlflow.exceptions.MlflowException:
        run_id = ""
    return f"v{version}-{run_id[:12]}"


def load_served(uri: str, version: str | None = None, cache_dir: str | Path | None = None,
                tracking_uri: str | None = None, ann: RetrievalConfig | None = None) -> Served:
    """Load the model at ``uri`` (pinned to ``version`` when the URI names a registered model).
    Embeddings are memory-mapped from a cache folder shared by the workers (``cache_dir``,
    default the registry's folder in the account's private cache: :mod:`guanxi.serving.model_cache`),
    so N workers hold one copy.

    Raises:
        ValueError: the model cannot be fetched or is not a readable recommendation bundle.
    """
    if uri.startswith(BENTO_SCHEME):
        return _load_bento_model(uri, ann)
    local = Path(uri)
    if local.is_dir():
        try:
            return Served(Recommender(load_bundle(local, mmap=True), ann, local), f"local:{local.name}", uri)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"bundle {uri} cannot be served: {type(exc).__name__}: {exc}") from exc
    version = version or resolve_version(uri, tracking_uri)
    m = _ALIAS.match(uri) or _VERSION.match(uri)
    fetch = f"models:/{m['name']}/{version}" if m else uri
    try:
        cache = model_cache.cache_dir(tracking_uri, cache_dir)
    except (OSError, ValueError) as exc:
        raise ValueError(f"model {fetch} cannot be served: {exc}") from exc
    try:
        path = _fetch_shared(fetch, _cache_name(fetch, m, version, tracking_uri), cache, tracking_uri)
        rec = Recommender(load_bundle(path, mmap=True), ann, path)
    except Exception as exc:  # noqa: BLE001 - any failure means "refuse this version"
        raise ValueError(f"model {fetch} cannot be served: {type(exc).__name__}: {exc}") from exc
    return Served(rec, version, uri, path.parent)


def _load_bento_model(uri: str, ann: RetrievalConfig | None) -> Served:
    """A bundle imported into the BentoML model store (``bentoml:NAME:TAG``); it reports the
    registry version it was imported from.

    Raises:
        ValueError: no such model in the store, or not a readable bundle.
    """
    model, version = _bento_model(uri)
    try:
        path = Path(model.path_of("bundle"))
        rec = Recommender(load_bundle(path, mmap=True), ann, path)
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot serve this"
        raise ValueError(f"model {uri} cannot be served: {type(exc).__name__}: {exc}") from exc
    return Served(rec, version, uri)


def _bento_model(uri: str) -> tuple["bentoml.Model", str]:  # noqa: F821 - imported lazily
    """The BentoML model ``bentoml:NAME:TAG`` names and the registry version it was imported from.

    Raises:
        ValueError: not in the BentoML model store.
    """
    import bentoml

    try:
        model = bentoml.models.get(uri[len(BENTO_SCHEME):])
    except Exception as exc:  # noqa: BLE001 - not found, bad tag
        raise ValueError(f"{uri}: not in the BentoML model store ({exc})") from exc
    return model, str(model.info.labels.get("registered_version", model.tag.version))


class ChampionHolder:
    """Holds the served model and follows its URI's alias.

    Args:
        uri: model URI (``models:/guanxi@champion``, ``models:/guanxi/3``, ``runs:/...``, a bundle dir).
        poll_seconds: how often to check the alias (0: never; ``reload()`` still works).
        cache_dir: where downloaded versions go (default the system temp dir).
        tracking_uri: the MLflow store holding the registry (default MLflow's current one).
    """

    def __init__(self, uri: str, poll_seconds: float = 10.0, cache_dir: str | Path | None = None,
                 tracking_uri: str | None = None, ann: RetrievalConfig | None = None) -> None:
        self.uri = uri
        self.ann = ann
        self.tracking_uri = tracking_uri
        self.cache_dir = cache_dir
        self.last_error: str | None = None
        self._refused: str | None = None
        self._lock = threading.Lock()
        self.current: Served = load_served(uri, cache_dir=cache_dir, tracking_uri=tracking_uri, ann=ann)
        logger.info("serving %s version %s", uri, self.current.version)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if poll_seconds > 0 and (_ALIAS.match(uri)):
            self._thread = threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True,
                                            name="guanxi-champion-poll")
            self._thread.start()

    def reload(self, force: bool = False) -> dict:
        """Check the alias now and move to its version if it changed (``force``: retry a version
        refused before; the poller does not, so a bad version is fetched once, not every poll).

        Returns:
            ``{"model_version", "changed", "error"}``; on error the old model keeps serving.
        """
        with self._lock:
            try:
                version = resolve_version(self.uri, self.tracking_uri)
                if version == self.current.version:
                    return {"model_version": version, "changed": False, "error": None}
                if version == self._refused and not force:
                    raise ValueError(self.last_error or f"version {version} was refused")
                self._refused = version
                served = load_served(self.uri, version, self.cache_dir, self.tracking_uri, self.ann)
            except ValueError as exc:
                if str(exc) != self.last_error:
                    logger.error("keeping version %s: %s", self.current.version, exc)
                self.last_error = str(exc)
                return {"model_version": self.current.version, "changed": False, "error": str(exc)}
            old = self.current
            self.current = served
            self.last_error = self._refused = None
            self._prune(keep={served.download_dir, old.download_dir})
            logger.info("moved from version %s to %s", old.version, served.version)
            return {"model_version": served.version, "changed": True, "error": None}

    def _prune(self, keep: set, versions: int = 3) -> None:
        """Delete cached versions beyond the newest few (open memory maps stay valid on POSIX)."""
        cache = model_cache.cache_dir(self.tracking_uri, self.cache_dir)
        if not cache.is_dir():
            return
        dirs = sorted((d for d in cache.glob("v*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
        for d in dirs[:-versions]:
            if d not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def _poll(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.reload()
            except Exception:  # noqa: BLE001 - the poller must never die
                logger.exception("champion poll failed")

    def stop(self) -> None:
        self._stop.set()
