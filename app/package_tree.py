"""The ``guanxi`` package as one folder tree, wherever its parts live.

In a checkout the package's parts are top-level folders (``contracts/``, ``features/``,
``training/``, ``serving/``, ``app/``) that ``[tool.setuptools.package-dir]`` in ``pyproject.toml``
maps into the ``guanxi`` namespace. Python imports them through that mapping, but tools that walk
one folder do not: import-linter looks for subpackages under ``guanxi/__init__.py``'s folder, a
Bento's build context is copied as files, and a second checkout served beside this one has no
install of its own. :func:`stage_package` gives them a staged copy laid out as an installed
package (``DEST/guanxi/features/...``), from a checkout (:func:`checkout_folders`) or from what is
imported now (:func:`installed_folders`, which also works for a regular, non-editable install).
"""
from __future__ import annotations

import importlib.util
import shutil
import tomllib
from pathlib import Path

ROOT_PACKAGE = "guanxi"
# What a staged copy holds: code, and the YAML defaults and the page that ship beside it.
SUFFIXES = (".py", ".yaml", ".html")


def checkout_folders(root: str | Path) -> dict[str, Path]:
    """Each package of a checkout and its folder, as ``pyproject.toml`` maps them.

    Args:
        root: the checkout (the folder holding ``pyproject.toml``).

    Returns:
        ``{"guanxi": root/contracts, "guanxi.features": root/features, ...}``.

    Raises:
        ValueError: ``pyproject.toml`` is missing or maps no ``guanxi`` package.
    """
    root = Path(root)
    path = root / "pyproject.toml"
    if not path.is_file():
        raise ValueError(f"{root}: no pyproject.toml (not a guanxi checkout)")
    setuptools = tomllib.loads(path.read_text()).get("tool", {}).get("setuptools", {})
    mapping = setuptools.get("package-dir", {})
    if ROOT_PACKAGE not in mapping:
        raise ValueError(f"{path}: [tool.setuptools.package-dir] maps no {ROOT_PACKAGE!r} package")
    return {name: root / folder for name, folder in mapping.items()
            if name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + ".")}


def installed_folders() -> dict[str, Path]:
    """Each package of the ``guanxi`` imported now and its folder (editable or regular install)."""
    root = importlib.util.find_spec(ROOT_PACKAGE)
    if root is None or not root.submodule_search_locations:
        raise ValueError(f"the {ROOT_PACKAGE!r} package is not importable")
    folders = {ROOT_PACKAGE: Path(list(root.submodule_search_locations)[0])}
    for name in ("features", "training", "serving", "app"):
        spec = importlib.util.find_spec(f"{ROOT_PACKAGE}.{name}")
        if spec is not None and spec.submodule_search_locations:
            folders[f"{ROOT_PACKAGE}.{name}"] = Path(list(spec.submodule_search_locations)[0])
    return folders


def stage_package(folders: dict[str, Path], dest: str | Path) -> Path:
    """Copy each package's files into ``dest`` laid out by import name; returns ``dest``.

    Only the files of each package itself are copied (its ``*.py`` and ``*.yaml``); a subpackage
    comes from its own entry in ``folders``, so a folder mapped to ``guanxi`` that happens to sit
    above the others is never copied twice.

    Raises:
        ValueError: a folder in ``folders`` does not exist, or ``dest`` already holds a package.
    """
    dest = Path(dest)
    if (dest / ROOT_PACKAGE).exists():
        raise ValueError(f"{dest / ROOT_PACKAGE} already exists")
    for name, folder in sorted(folders.items()):
        if not folder.is_dir():
            raise ValueError(f"package {name}: folder {folder} does not exist")
        target = dest.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.suffix in SUFFIXES:
                shutil.copy2(file, target / file.name)
    return dest


def importable_checkout(checkout: str | Path, staging: str | Path) -> tuple[str, Path]:
    """The service module and the folder to import it from, for a checkout of any layout the
    project has had (benchmarks serve an earlier commit beside this one).

    Args:
        checkout: a checkout (a git worktree) of the project.
        staging: where to stage a checkout whose layers are mapped folders (replaced).

    Returns:
        ``("guanxi.serving.service", folder)`` for the mapped folders (staged) or ``src/guanxi/``,
        ``("serving.service", checkout)`` for the first layout, top-level packages.
    """
    checkout, staging = Path(checkout), Path(staging)
    if (checkout / "src" / "guanxi").is_dir():
        return "guanxi.serving.service", checkout / "src"
    try:
        folders = checkout_folders(checkout)
    except ValueError:
        return "serving.service", checkout
    shutil.rmtree(staging, ignore_errors=True)
    return "guanxi.serving.service", stage_package(folders, staging)
