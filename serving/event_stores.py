"""Which event log a setting names, and opening it: the one place ``GUANXI_EVENTS_DB`` and
``--events-db`` are read.

Accepted values:
- a file path (``events.db``, ``/var/lib/guanxi/events.db``) or ``sqlite:///relative.db`` /
  ``sqlite:////absolute.db``: the embedded SQLite log (one machine);
- ``postgresql://user[:password]@host[:port]/database[?param=value...]`` (or ``postgres://``): the
  shared PostgreSQL log (several replicas), parsed as libpq would parse it.
Parsing is strict, since a value taken for a file path would silently give each replica a log of
its own: a value in quotes (an env file keeps them), anything with ``://`` or a scheme that is not
a valid SQLite or PostgreSQL URL (``mysql://...``, ``postgresql:/x``, a port that is not a number,
an unknown URL parameter), a libpq ``key=value`` string, or a path that is a folder is a
:class:`ValueError` naming the value, raised before a server starts. No message ever carries a
password, in any form (``user:password@``, ``?password=...``, ``password=...``): :func:`redact`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from guanxi.serving.events import EventStore

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_USERINFO_PASSWORD = re.compile(r"(://[^/@\s:]*:)([^@]*)@")
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE)
_KEY_VALUE = re.compile(r"(^|\s)[A-Za-z_]+\s*=")


def _passwords(text: str) -> list[str]:
    """Every password ``text`` carries, raw and percent-decoded, longest first."""
    found = [m.group(2) for m in _USERINFO_PASSWORD.finditer(text)]
    found += [m.group(2).strip("'") for m in _PASSWORD_PARAM.finditer(text)]
    return sorted({s for raw in found for s in (raw, unquote(raw)) if s}, key=len, reverse=True)


def redact(text: str, source: str | None = None) -> str:
    """``text`` with every password replaced by ``***``: a URL's ``user:password@``, a
    ``password=`` URL parameter or libpq ``key=value`` field, and the raw or percent-decoded form of
    any password of ``text`` (or of ``source``, the value an error message quotes parts of)
    wherever else it appears."""
    secrets = _passwords(text) + _passwords(source or "")
    out = _USERINFO_PASSWORD.sub(r"\1***@", text)
    out = _PASSWORD_PARAM.sub(r"\1***", out)
    for secret in secrets:
        out = out.replace(secret, "***")
    return out


@dataclass(frozen=True)
class EventLogTarget:
    """A parsed event-log setting: ``kind`` is ``"sqlite"`` (``path`` set) or ``"postgresql"`` (``url``)."""

    kind: str
    path: Path | None = None
    url: str | None = None

    def __str__(self) -> str:
        if self.kind == "sqlite":
            return str(self.path)
        return redact(self.url or "")

    def exists(self) -> bool:
        """Whether the log is there to read: the SQLite file exists, or a PostgreSQL URL (the
        database is checked when it is opened)."""
        return self.kind == "postgresql" or bool(self.path and self.path.is_file())

    def resolved(self) -> str:
        """The setting as a child process should get it (SQLite paths made absolute)."""
        return str(self.path.resolve()) if self.kind == "sqlite" and self.path else str(self.url)


def parse_event_log(value: str | Path) -> EventLogTarget:
    """Parse an event-log setting (module doc).

    Raises:
        ValueError: anything but a usable SQLite path or URL or a valid PostgreSQL URL; the
            message names the value, passwords redacted.
    """
    text = str(value).strip()
    if not text:
        raise ValueError("the event log setting is empty: give a file path or a postgresql:// URL")
    shown = redact(text)
    if text[0] in "'\"" or text[-1] in "'\"":
        raise ValueError(f"event log {shown}: remove the quotes around the value (an env file or a "
                         "YAML list may keep them); give a file path or a postgresql:// URL")
    scheme = _SCHEME.match(text)
    drive = scheme is not None and len(scheme.group(1)) == 1 and text[1:3] in (":\\", ":/")
    if scheme and not drive:
        name = scheme.group(1).lower()
        if name in ("postgresql", "postgres"):
            return EventLogTarget("postgresql", url=_postgres_url(text, name, shown))
        if name == "sqlite":
            if not text.lower().startswith("sqlite:///") or len(text) == len("sqlite:///"):
                raise ValueError(f"event log {shown!r}: a SQLite URL reads sqlite:///relative.db or "
                                 "sqlite:////absolute.db")
            return _sqlite(Path(text[len("sqlite:///"):]), shown)
        raise ValueError(f"event log {shown!r}: unsupported scheme {name!r}; use a file path, "
                         "sqlite:///path or postgresql://user@host:port/db")
    if "://" in text:
        raise ValueError(f"event log {shown!r} looks like a URL but is not one this service reads; "
                         "use a file path, sqlite:///path or postgresql://user@host:port/db")
    if _KEY_VALUE.search(text):
        raise ValueError(f"event log {shown!r} looks like a libpq key=value string; give it as a URL, "
                         "postgresql://user@host:port/db")
    return _sqlite(Path(text), shown)


def _postgres_url(text: str, name: str, shown: str) -> str:
    """``text`` when libpq would parse it as a PostgreSQL URL with a numeric port."""
    if not text.lower().startswith(f"{name}://"):
        raise ValueError(f"event log {shown!r}: a PostgreSQL URL reads postgresql://user@host:port/db")
    if any(ch.isspace() for ch in text):
        raise ValueError(f"event log {shown!r}: a URL has no spaces (percent-encode them as %20)")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(text)
    except ProgrammingError as exc:
        raise ValueError(f"event log {shown!r} is not a valid PostgreSQL URL: "
                         f"{redact(str(exc).strip(), text)}") from None
    port = str(params.get("port", "5432"))
    if not all(p.isdigit() for p in port.split(",")):
        raise ValueError(f"event log {shown!r}: port {port!r} is not a number")
    return text


def _sqlite(path: Path, shown: str) -> EventLogTarget:
    if path.is_dir():
        raise ValueError(f"event log {shown!r} is a folder; give the SQLite file inside it (e.g. {path / 'events.db'})")
    return EventLogTarget("sqlite", path=path)


def open_event_store(value: str | Path, busy_timeout_ms: int = 5_000, create: bool = True,
                     statement_timeout_ms: int | None = None) -> EventStore:
    """Open the event log a setting names (creating its schema when ``create``).
    ``statement_timeout_ms`` bounds every PostgreSQL statement (the service sets it; operator
    commands reading the whole log do not).

    Raises:
        ValueError: the setting is not a usable log (see :func:`parse_event_log`), or PostgreSQL
            cannot be reached.
        FileNotFoundError: ``create=False`` and the SQLite file is missing.
    """
    target = parse_event_log(value)
    if target.kind == "postgresql":
        from guanxi.serving.events_postgres import PostgresEventStore

        return PostgresEventStore(target.url or "", busy_timeout_ms, create=create,
                                  statement_timeout_ms=statement_timeout_ms)
    import sqlite3

    from guanxi.serving.events import SQLiteEventStore

    try:
        return SQLiteEventStore(target.path or Path("events.db"), busy_timeout_ms, create=create)
    except (sqlite3.DatabaseError, PermissionError, NotADirectoryError) as exc:
        raise ValueError(f"cannot open the event log {target.path}: {exc}") from None
