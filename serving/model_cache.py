"""Where serving workers keep downloaded model versions, private to the account that runs them.

The default root is ``$XDG_CACHE_HOME/guanxi/models`` (``~/.cache/guanxi/models``), or
``$TMPDIR/guanxi-<uid>/models`` where the home folder cannot be written; ``GUANXI_MODEL_CACHE``
names another. Inside it, one folder per registry (a hash of the tracking URI, normalised so that
``sqlite:///mlflow.db`` run from two folders are two registries and one registry spelled two ways is
one) holds one folder per version.

A cache is code-adjacent data (a bundle decides what every user is shown), so a worker loads
nothing from a root another account could have written: the root must belong to this process's
user and be writable by nobody else (:func:`private_root` fixes the mode of a root it owns and
refuses any other), which a predictable shared temp folder would not guarantee.

Every root a worker uses is recorded in ``cache-roots`` beside the default root, so ``guanxi forget
--purge-versions`` finds every cache by what it holds, wherever the server ran from and however its
settings spelled the registry (:func:`known_roots`).
"""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

# Earlier releases cached under the shared temp folder; purges still look there.
LEGACY_ROOT = Path(tempfile.gettempdir()) / "guanxi-models"


def default_root() -> Path:
    """The account's own cache root (module doc)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    home = Path(base) / "guanxi" / "models"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return home
    except OSError:
        return Path(tempfile.gettempdir()) / f"guanxi-{os.geteuid()}" / "models"


def registry_key(tracking_uri: str | None) -> str:
    """A short stable name for a registry: its tracking URI with SQLite and file paths made
    absolute (``sqlite:///mlflow.db`` means the working directory's file)."""
    uri = tracking_uri or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    elif uri.startswith("file:"):
        uri = "file://" + str(Path(uri.removeprefix("file://").removeprefix("file:")).resolve())
    elif "://" not in uri:
        uri = str(Path(uri).resolve())
    return hashlib.sha1(uri.rstrip("/").encode()).hexdigest()[:12]


def private_root(root: str | Path, chosen: bool = False) -> Path:
    """``root``, created when missing, once it is shown to be private to this account.

    Args:
        root: the cache root.
        chosen: the operator named it (``GUANXI_MODEL_CACHE``): its mode is checked, not changed.

    Raises:
        ValueError: another account owns it, or (a chosen root) others may write to it.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = root.stat()
    if info.st_uid != os.geteuid():
        raise ValueError(f"model cache {root} belongs to uid {info.st_uid}, not to this process (uid "
                         f"{os.geteuid()}): refusing to load models from it; set GUANXI_MODEL_CACHE to a "
                         "folder of your own")
    loose = stat.S_IMODE(info.st_mode) & (0o022 if chosen else 0o077)
    if loose and chosen:
        raise ValueError(f"model cache {root} (GUANXI_MODEL_CACHE) is writable by other accounts "
                         f"(mode {stat.S_IMODE(info.st_mode):o}): make it private (chmod 700)")
    if loose:
        root.chmod(0o700)
    _record(root)
    return root


def cache_dir(tracking_uri: str | None, chosen: str | Path | None = None) -> Path:
    """The folder one registry's versions are cached in: ``chosen`` (``GUANXI_MODEL_CACHE``) as
    is, or the registry's folder under the default root; checked private either way."""
    if chosen is not None:
        return private_root(chosen, chosen=True)
    return private_root(default_root()) / registry_key(tracking_uri)


def _index() -> Path:
    return default_root().parent / "cache-roots"


def _record(root: Path) -> None:
    """Add ``root`` to the index of cache roots (one line each, appended; read back deduplicated)."""
    line = str(root.resolve())
    index = _index()
    try:
        if index.is_file() and line in index.read_text().splitlines():
            return
        fd = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass                     # an unwritable index only narrows what a purge finds by itself


def known_roots() -> list[Path]:
    """Every cache root a worker of this account recorded, the default root, ``$GUANXI_MODEL_CACHE``
    and the legacy shared one: where a purge looks."""
    roots = [default_root(), LEGACY_ROOT]
    if os.environ.get("GUANXI_MODEL_CACHE"):
        roots.append(Path(os.environ["GUANXI_MODEL_CACHE"]))
    index = _index()
    if index.is_file():
        roots += [Path(line) for line in index.read_text().splitlines() if line.strip()]
    seen: dict[str, Path] = {}
    for root in roots:
        seen.setdefault(str(root.resolve()), root)
    return [r for r in seen.values() if r.is_dir()]
