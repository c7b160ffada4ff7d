"""Frozen dataclass configs from YAML, one loader for all of them (training, retraining, policy).

Packaged defaults first (a YAML file inside the package, so nothing depends on the working
directory), then an optional file, then ``key=value`` overrides. An unknown key is a
``ValueError`` that lists the valid keys; a value of the wrong type names the key and the value.
"""
from __future__ import annotations

from dataclasses import fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def coerce(name: str, raw: Any, kind: type) -> Any:
    """``raw`` (from YAML) as ``kind``, or a ``ValueError`` naming ``name`` and the value."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    if kind is str and raw is None:  # ``key:`` or ``key=`` with nothing after it
        return ""
    if kind in (int, float) and isinstance(raw, bool):
        raise ValueError(f"{name} must be {kind.__name__}, got {raw!r}")
    if kind is int and isinstance(raw, float) and not raw.is_integer():
        raise ValueError(f"{name} must be int, got {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {kind.__name__}, got {raw!r}") from exc


def apply_values(config: T, values: Any, source: str, what: str) -> T:
    """``config`` with ``values`` (a mapping from ``source``) set; ``what`` names the config in
    errors ("unknown policy key ...")."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of key: value")
    types = {f.name: _KINDS[str(f.type)] for f in fields(config)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"{source}: unknown {what} key {unknown[0]!r}; valid keys: {sorted(types)}")
    try:
        return replace(config, **{k: coerce(k, v, types[k]) for k, v in values.items()})
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(source) else f"{source}: {message}") from None


def load_yaml_config(default: T, package: str, resource: str, path: str | Path | None = None,
                     overrides: list[str] | None = None, what: str = "config") -> T:
    """Defaults from the packaged ``package/resource``, then the file at ``path``, then ``key=value``.

    Args:
        default: the dataclass instance to start from (its class gives the keys and types).
        package, resource: where the packaged YAML lives (e.g. ``"training"``, ``"default.yaml"``).
        path: an optional YAML file; a missing one is an error.
        overrides: ``key=value`` strings, values parsed as YAML.
        what: the config's name in error messages.
    """
    config = apply_values(default, yaml.safe_load(resources.files(package).joinpath(resource).read_text()) or {},
                          f"{package}/{resource}", what)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"{what} file {p} not found")
        config = apply_values(config, yaml.safe_load(p.read_text()) or {}, str(p), what)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        config = apply_values(config, {key.strip(): yaml.safe_load(value)}, f"--set {item}", what)
    return config
