"""Which event log a setting names, and opening it: the one place ``GUANXI_EVENTS_DB`` and
``--events-db`` are read.

Accepted values:
- a file path (``events.db``, ``/var/lib/guanxi/events.db``) or ``sqlite:///relative.db`` /
  ``sqlite:////absolute.db``: the embedded SQLite log (one machine);
- ``postgresql://user[:password]@host[:port]/database`` (or ``postgres://``): the shared
  PostgreSQL log (several replicas).
Anything else with a scheme (``mysql://...``, ``postgresql:/x``), or a path that is a folder, is a
:class:`ValueError` naming the value, raised before a server starts: never a stray SQLite file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from guanxi.serving.events import EventStore

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class EventLogTarget:
    """A parsed event-log setting: ``kind`` is ``"sqlite"`` (``path`` set) or ``"postgresql"`` (``url``)."""

    kind: str
    path: Path | None = None
    url: str | None = None

    def __str__(self) -> str:
        if self.kind == "sqlite":
            return str(self.path)
        from guanxi.serving.events_postgres import redact

        return redact(self.url or "")

    def exists(self) -> bool:
        """Whether the log is there to read: the SQLite file exists, or a PostgreSQL URL (the
        database is checked when it is opened)."""
        return self.kind == "postgresql" or bool(self.path and self.path.is_file())

    def resolved(self) -> str:
        """The setting as a child process should get it (SQLite paths made absolute)."""
        return str(self.path.resolve()) if self.kind == "sqlite" and self.path else str(self.url)


def parse_event_log(value: str | Path) -> EventLogTarget:
    """Parse an event-log setting.

    Raises:
        ValueError: an unsupported scheme, a malformed URL, an empty value or a folder; the message
            names the value.
    """
    text = str(value).strip()
    if not text:
        raise ValueError("the event log setting is empty: give a file path or a postgresql:// URL")
    scheme = _SCHEME.match(text)
    if scheme and not (len(scheme.group(1)) == 1 and text[1:3] in (":\\", ":/")):   # not a drive letter
        name = scheme.group(1).lower()
        if name in ("postgresql", "postgres"):
            if not text.lower().startswith(f"{name}://"):
                raise ValueError(f"event log {text!r}: a PostgreSQL URL reads postgresql://user@host:port/db")
            return EventLogTarget("postgresql", url=text)
        if name == "sqlite":
            if not text.lower().startswith("sqlite:///") or len(text) == len("sqlite:///"):
                raise ValueError(f"event log {text!r}: a SQLite URL reads sqlite:///relative.db or "
                                 "sqlite:////absolute.db")
            return _sqlite(Path(text[len("sqlite:///"):]), text)
        raise ValueError(f"event log {text!r}: unsupported scheme {name!r}; use a file path, "
                         "sqlite:///path or postgresql://user@host:port/db")
    return _sqlite(Path(text), text)


def _sqlite(path: Path, text: str) -> EventLogTarget:
    if path.is_dir():
        raise ValueError(f"event log {text!r} is a folder; give the SQLite file inside it (e.g. {path / 'events.db'})")
    return EventLogTarget("sqlite", path=path)


def open_event_store(value: str | Path, busy_timeout_ms: int = 5_000, create: bool = True) -> EventStore:
    """Open the event log a setting names (creating its schema when ``create``).

    Raises:
        ValueError: the setting is not a usable log (see :func:`parse_event_log`), or PostgreSQL
            cannot be reached.
        FileNotFoundError: ``create=False`` and the SQLite file is missing.
    """
    target = parse_event_log(value)
    if target.kind == "postgresql":
        from guanxi.serving.events_postgres import PostgresEventStore

        return PostgresEventStore(target.url or "", busy_timeout_ms, create=create)
    import sqlite3

    from guanxi.serving.events import SQLiteEventStore

    try:
        return SQLiteEventStore(target.path or Path("events.db"), busy_timeout_ms, create=create)
    except (sqlite3.DatabaseError, PermissionError, NotADirectoryError) as exc:
        raise ValueError(f"cannot open the event log {target.path}: {exc}") from None
