"""Frozen pydantic configs from YAML, one base and one loader for all of them (training,
retraining, policy).

Packaged defaults first (a YAML file inside the package, so nothing depends on the working
directory), then an optional file, then ``key=value`` overrides. An unknown key is a
``ValueError`` that lists the valid keys; a value of the wrong type names the key and the value;
a value a config's own check refuses names the file or override it came from.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

_KINDS = (bool, int, float, str)


class FrozenConfig(BaseModel):
    """An immutable config: unknown keys refused, every value checked when it is built or changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def replace(self, **changes: Any) -> "FrozenConfig":
        """A copy with ``changes`` applied and checked again (pydantic's ``model_copy`` checks nothing)."""
        return type(self)(**{**self.model_dump(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


T = TypeVar("T", bound=FrozenConfig)


def _message(exc: ValidationError) -> str:
    """The first error of ``exc`` as one line (a config check's own words when it raised)."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = ".".join(str(x) for x in err.get("loc", ()))
    return msg if not where or where in msg else f"{where}: {msg}"


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
    if kind is str and isinstance(raw, bool):  # YAML reads a bare on/off (yes/no) as a boolean
        return "on" if raw else "off"
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
    types = {name: _kind(f.annotation) for name, f in type(config).model_fields.items()}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"{source}: unknown {what} key {unknown[0]!r}; valid keys: {sorted(types)}")
    try:
        return config.replace(**{k: coerce(k, v, types[k]) for k, v in values.items()})
    except ValidationError as exc:
        raise ValueError(f"{source}: {_message(exc)}") from None
    except ValueError as exc:
        message = str(exc)
        raise ValueError(message if message.startswith(source) else f"{source}: {message}") from None


def _kind(annotation: Any) -> type:
    """The plain type a YAML value is coerced to (configs hold bool, int, float and str only)."""
    kind = annotation if isinstance(annotation, type) else {k.__name__: k for k in _KINDS}.get(str(annotation))
    if kind not in _KINDS:
        raise TypeError(f"config fields must be bool, int, float or str, got {annotation!r}")
    return kind


def load_yaml_config(default: T, package: str, resource: str, path: str | Path | None = None,
                     overrides: list[str] | None = None, what: str = "config") -> T:
    """Defaults from the packaged ``package/resource``, then the file at ``path``, then ``key=value``.

    Args:
        default: the config to start from (its class gives the keys and types).
        package, resource: where the packaged YAML lives (e.g. ``"guanxi.training"``, ``"default.yaml"``).
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
