"""The event log behind ``/feedback``, ``/settings`` and the impression log (frequency caps).

One small interface (:class:`EventStore`); the default is SQLite in WAL mode
(:class:`SQLiteEventStore`), the shared one PostgreSQL (:mod:`guanxi.serving.events_postgres`);
:mod:`guanxi.serving.event_stores` opens whichever a setting names. Feedback batches are committed with ``synchronous=FULL`` before the
service acknowledges them, in one transaction (a batch is stored whole or not at all). ``event_id``
is unique per user: a retried batch is stored once, and the answer counts the duplicates. Every row
carries a monotonically increasing ``seq`` (its arrival order) that retraining uses as its
watermark. Impressions are logged with ``synchronous=NORMAL`` (a crash may lose the last few; they
only feed frequency caps) and deleted after the retention window. They are stored one row per
returned slate (its item ids as a JSON array): a row per item cost ~130 us of SQLite work per
request; readers see one row per item.

Forget is final: every write (feedback, settings, impressions) checks the forget list inside its
own transaction, so a user forgotten on any replica is never stored again, whatever a client
retries. Their feedback events are acknowledged (counted in ``accepted``, as any event the service
takes) and dropped; a settings change for them writes nothing and answers the defaults; their
impressions are not logged. The check and ``forget`` are serialised by the store (SQLite: one
writer at a time; PostgreSQL: advisory locks), so no write slips between a forget's delete and its
commit.

A store that cannot take a write (locked past the busy timeout, disk full, I/O error) raises
:class:`StoreUnavailable`, which the service answers with 503 and ``Retry-After``: the client keeps
the batch and retries, so nothing acknowledged is lost and nothing unacknowledged is half-stored.
"""
from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import pandas as pd

from guanxi.serving.forget_list import ForgetList, hash_user
from guanxi.serving.store_migrations import migrate

logger = logging.getLogger(__name__)

# A user's mute list holds at most this many ids in total (``/settings`` refuses more).
MAX_MUTES_TOTAL = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL, value REAL, received_ts INTEGER NOT NULL,
    UNIQUE (user_id, event_id));
CREATE INDEX IF NOT EXISTS events_received_ts ON events (received_ts);
CREATE TABLE IF NOT EXISTS impression_slates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, ts INTEGER NOT NULL,
    model_version TEXT, items TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS impression_slates_user_ts ON impression_slates (user_id, ts);
CREATE TABLE IF NOT EXISTS settings (
    user_id TEXT PRIMARY KEY, commercial_opt_out INTEGER NOT NULL DEFAULT 0, updated_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mutes (
    user_id TEXT NOT NULL, target_id TEXT NOT NULL, PRIMARY KEY (user_id, target_id));
CREATE TABLE IF NOT EXISTS forgotten (hash TEXT PRIMARY KEY, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# SQLite's words for "cannot write now" (locked, busy, full, I/O): a 503, not a bug.
_UNAVAILABLE = ("locked", "busy", "full", "disk i/o", "readonly", "unable to open")


class StoreUnavailable(RuntimeError):
    """The event log cannot take the write now; retry after ``retry_after`` seconds."""

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(f"the event log is unavailable ({reason}); retry later")
        self.retry_after = retry_after


class SettingsError(ValueError):
    """A settings change the store refuses; ``field`` names the request field."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


def check_mute_cap(n: int) -> None:
    """Raise :class:`SettingsError` when a change would leave ``n`` mutes, above the cap (the
    store's transaction then rolls the change back)."""
    if n > MAX_MUTES_TOTAL:
        raise SettingsError("mute", f"the mute list would hold {n} ids, above the cap of "
                                    f"{MAX_MUTES_TOTAL}; unmute some first")


@dataclass(frozen=True)
class UserSettings:
    user_id: str
    commercial_opt_out: bool = False
    mute: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"user_id": self.user_id, "commercial_opt_out": self.commercial_opt_out,
                "mute": list(self.mute)}


@dataclass(frozen=True)
class Appended:
    """What a feedback batch did: ``accepted`` events (all of the batch, once stored; a forgotten
    user's events are accepted and dropped), of which ``duplicates`` were stored before (same user
    and ``event_id``) or repeated in the batch."""

    accepted: int
    duplicates: int


class EventStore(Protocol):
    """What the service and the retraining job need from an event log."""

    def append(self, events: list[dict]) -> Appended: ...
    def log_impressions(self, user_id: str, item_ids: list[str], ts: int, model_version: str) -> None: ...
    def log_impressions_many(self, slates: list[tuple[str, list[str], int, str]]) -> None: ...
    def impression_counts(self, user_id: str, since_ts: int) -> dict[str, int]: ...
    def settings(self, user_id: str) -> UserSettings: ...
    def user_state(self, user_id: str, since_ts: int) -> tuple[UserSettings, dict[str, int]]: ...
    def update_settings(self, user_id: str, commercial_opt_out: bool | None, mute: list[str],
                        unmute: list[str]) -> UserSettings: ...
    def events_since(self, seq: int, upto: int | None = None) -> pd.DataFrame: ...
    def recent_events(self, after_seq: int, since_ts: int, limit: int,
                      types: tuple[str, ...] | None = None) -> list[tuple]: ...
    def impressions_since(self, seq: int) -> pd.DataFrame: ...
    def prune_impressions(self, before_ts: int) -> int: ...
    def forget(self, user_id: str) -> dict[str, int]: ...
    def drop_forgotten_impressions(self, forget: ForgetList, since_ts: int) -> int: ...
    def forget_list(self) -> ForgetList: ...
    def forgotten_count(self) -> int: ...
    def max_seq(self) -> int: ...
    def close(self) -> None: ...


class SQLiteEventStore:
    """SQLite event log (one file; one connection per thread, WAL so readers never block writers).

    Args:
        path: database file; created with its tables when missing (``create=False``: a missing
            file is a ``FileNotFoundError``).
        busy_timeout_ms: how long a writer waits for another process's lock before
            :class:`StoreUnavailable`.
        open_wait_s: how long opening waits for another process that holds the log's write lock
            (a worker starting while another migrates a large log), retrying past the busy
            timeout, before it gives up with :class:`StoreUnavailable`.
    """

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5_000, create: bool = True,
                 open_wait_s: float = 600.0) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no event log at {self.path} (set --events-db or GUANXI_EVENTS_DB)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy = busy_timeout_ms
        self._local = threading.local()
        deadline = time.monotonic() + open_wait_s
        while True:
            try:
                self._open_schema()
                break
            except (StoreUnavailable, sqlite3.OperationalError) as exc:
                if time.monotonic() >= deadline or not _busy(exc):
                    raise
                logger.info("event log %s is locked by another process (a migration?); waiting", self.path)
        self._salt = bytes.fromhex(self._conn().execute(
            "SELECT value FROM meta WHERE key = 'forget_salt'").fetchone()[0])

    def _open_schema(self) -> None:
        """WAL mode and today's schema (migrating earlier layouts), in one write transaction."""
        self._conn().execute("PRAGMA journal_mode=WAL")
        with self._transaction("FULL") as conn:
            migrate(conn)                 # earlier layouts first: the schema below assumes today's
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            if not conn.execute("SELECT 1 FROM meta WHERE key = 'forget_salt'").fetchone():
                conn.execute("INSERT INTO meta (key, value) VALUES ('forget_salt', ?)", (secrets.token_hex(16),))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={self._busy}")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, synchronous: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (``synchronous`` FULL: fsync at commit; NORMAL: at checkpoints).

        Raises:
            StoreUnavailable: the write could not be made (nothing of it is stored).
        """
        conn = self._conn()
        try:
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _unavailable(exc) from exc
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def append(self, events: list[dict]) -> Appended:
        """Store a validated batch durably (fsync before returning), all or nothing.

        Args:
            events: dicts with ``user_id``, ``item_id``, ``type`` and optional ``ts`` (default now),
                ``value``, ``event_id`` (default a fresh uuid: such an event is not idempotent).

        Returns:
            the batch's size and how many of its events were already stored.

        Raises:
            StoreUnavailable: locked, full or failing; nothing of the batch is stored.
        """
        now = int(time.time())
        rows = [(e.get("event_id") or uuid.uuid4().hex, str(e["user_id"]), str(e["item_id"]), e["type"],
                 int(e["ts"]) if e.get("ts") is not None else now, e.get("value"), now) for e in events]
        with self._transaction("FULL") as conn:
            gone = self._forgotten_among(conn, {r[1] for r in rows})
            rows = [r for r in rows if r[1] not in gone] if gone else rows
            before = conn.total_changes
            # ON CONFLICT, not OR IGNORE: only a repeated event_id is skipped; a row that breaks
            # another constraint fails the whole batch instead of vanishing from it.
            conn.executemany("INSERT INTO events (event_id, user_id, item_id, type, ts, value, received_ts) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, event_id) DO NOTHING", rows)
            stored = conn.total_changes - before
        return Appended(len(events), len(rows) - stored)

    def log_impressions(self, user_id: str, item_ids: list[str], ts: int, model_version: str) -> None:
        self.log_impressions_many([(user_id, item_ids, ts, model_version)])

    def log_impressions_many(self, slates: list[tuple[str, list[str], int, str]]) -> None:
        """Log several slates ``(user_id, item_ids, ts, model_version)`` in one transaction."""
        rows = [(u, ts, v, json.dumps(items)) for u, items, ts, v in slates if items]
        if not rows:
            return
        with self._transaction("NORMAL") as conn:
            gone = self._forgotten_among(conn, {r[0] for r in rows})
            rows = [r for r in rows if r[0] not in gone] if gone else rows
            conn.executemany("INSERT INTO impression_slates (user_id, ts, model_version, items) VALUES (?, ?, ?, ?)",
                             rows)

    def impression_counts(self, user_id: str, since_ts: int) -> dict[str, int]:
        """item_id -> impressions of the user at or after ``since_ts``."""
        # Every slate's JSON array, brackets stripped, joined into one string: one parse and a
        # count in C, however many slates the user was shown (the loop per slate cost more).
        (joined,) = self._conn().execute(
            "SELECT group_concat(substr(items, 2, length(items) - 2), ',') FROM impression_slates "
            "WHERE user_id = ? AND ts >= ? AND items != '[]'", (user_id, since_ts)).fetchone()
        return Counter(json.loads(f"[{joined}]")) if joined else {}

    def prune_impressions(self, before_ts: int) -> int:
        """Delete impressions older than ``before_ts``; returns how many."""
        with self._transaction("NORMAL") as conn:
            n = conn.execute("SELECT COALESCE(SUM(json_array_length(items)), 0) FROM impression_slates "
                             "WHERE ts < ?", (before_ts,)).fetchone()[0]
            conn.execute("DELETE FROM impression_slates WHERE ts < ?", (before_ts,))
        return int(n)

    def settings(self, user_id: str) -> UserSettings:
        """The user's settings (defaults when none were set); reads only, never writes a row."""
        # One statement (read on every /recommend): the opt-out flag and the mutes as a JSON array.
        opt_out, mutes = self._conn().execute(
            "SELECT (SELECT commercial_opt_out FROM settings WHERE user_id = ?1), "
            "(SELECT json_group_array(target_id) FROM mutes WHERE user_id = ?1)", (user_id,)).fetchone()
        return UserSettings(user_id, bool(opt_out), tuple(sorted(json.loads(mutes))))

    def user_state(self, user_id: str, since_ts: int) -> tuple[UserSettings, dict[str, int]]:
        """The user's settings and impression counts since ``since_ts``: what ``/recommend`` reads."""
        return self.settings(user_id), self.impression_counts(user_id, since_ts)

    def update_settings(self, user_id: str, commercial_opt_out: bool | None, mute: list[str],
                        unmute: list[str]) -> UserSettings:
        """Apply a settings change durably and return the user's settings after it. A request
        that changes nothing writes nothing (reading settings never creates a row).

        Raises:
            SettingsError: the mute list would exceed :data:`MAX_MUTES_TOTAL` (nothing changes).
            StoreUnavailable: the store cannot take the write.
        """
        if commercial_opt_out is None and not mute and not unmute:
            return self.settings(user_id)
        with self._transaction("FULL") as conn:
            if self._forgotten_among(conn, {user_id}):
                return UserSettings(user_id)           # forgotten: nothing is stored for them again
            if commercial_opt_out is not None:
                conn.execute("INSERT INTO settings (user_id, commercial_opt_out, updated_ts) VALUES (?, ?, ?) "
                             "ON CONFLICT(user_id) DO UPDATE SET commercial_opt_out = excluded.commercial_opt_out, "
                             "updated_ts = excluded.updated_ts", (user_id, int(commercial_opt_out), int(time.time())))
            conn.executemany("INSERT OR IGNORE INTO mutes (user_id, target_id) VALUES (?, ?)",
                             [(user_id, m) for m in mute])
            conn.executemany("DELETE FROM mutes WHERE user_id = ? AND target_id = ?",
                             [(user_id, m) for m in unmute])
            check_mute_cap(conn.execute("SELECT COUNT(*) FROM mutes WHERE user_id = ?", (user_id,)).fetchone()[0])
        return self.settings(user_id)

    def events_since(self, seq: int = 0, upto: int | None = None) -> pd.DataFrame:
        """Feedback events with ``seq < seq' <= upto`` (no upper bound when None), oldest first:
        the events table's columns plus ``seq`` and ``received_ts`` (server time of arrival)."""
        return pd.read_sql_query(
            "SELECT seq, user_id, item_id, type, ts, value, event_id, received_ts FROM events "
            "WHERE seq > ? AND seq <= ? ORDER BY seq",
            self._conn(), params=(seq, upto if upto is not None else 2**62))

    def recent_events(self, after_seq: int, since_ts: int, limit: int,
                      types: tuple[str, ...] | None = None) -> list[tuple]:
        """At most ``limit`` feedback events with ``seq > after_seq`` received at or after
        ``since_ts`` (server time), oldest first, as ``(seq, user_id, item_id, type, received_ts)``;
        impressions never, and only ``types`` when given (serving's recent view reads these)."""
        sql = ("SELECT seq, user_id, item_id, type, received_ts FROM events WHERE seq > ? AND received_ts >= ? "
               "AND type != 'impression'")
        params: list = [after_seq, since_ts]
        if types is not None:
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            params += list(types)
        return self._conn().execute(sql + " ORDER BY seq LIMIT ?", (*params, limit)).fetchall()

    def impressions_since(self, seq: int = 0) -> pd.DataFrame:
        """Logged impressions with ``seq > seq``, oldest first."""
        return pd.read_sql_query(
            "SELECT s.seq, s.user_id, j.value AS item_id, s.ts, s.model_version "
            "FROM impression_slates AS s, json_each(s.items) AS j WHERE s.seq > ? ORDER BY s.seq, j.key",
            self._conn(), params=(seq,))

    def drop_forgotten_impressions(self, forget: ForgetList, since_ts: int) -> int:
        """Delete impressions logged at or after ``since_ts`` for users on ``forget`` (a serving
        process that logged them while ``guanxi forget`` ran); returns how many slates."""
        users = [r[0] for r in self._conn().execute(
            "SELECT DISTINCT user_id FROM impression_slates WHERE ts >= ?", (since_ts,)).fetchall()]
        gone = [u for u, hit in zip(users, forget.mask(users)) if hit]
        if not gone:
            return 0
        with self._transaction("NORMAL") as conn:
            return sum(conn.execute("DELETE FROM impression_slates WHERE user_id = ?", (u,)).rowcount for u in gone)

    def _forgotten_among(self, conn: sqlite3.Connection, users: set[str]) -> set[str]:
        """Which of ``users`` are on the forget list, read inside the caller's transaction."""
        if not users:
            return set()
        hashes = {hash_user(self._salt, u): u for u in users}
        found = conn.execute("SELECT hash FROM forgotten WHERE hash IN (SELECT value FROM json_each(?))",
                             (json.dumps(list(hashes)),)).fetchall()
        return {hashes[h] for (h,) in found}

    def forget_list(self) -> ForgetList:
        """The users who asked to be forgotten (salted hashes): kept out of every later model."""
        rows = self._conn().execute("SELECT hash FROM forgotten").fetchall()
        return ForgetList(self._salt, (r[0] for r in rows))

    def forgotten_count(self) -> int:
        """How many users were forgotten (a cheap change check for pollers)."""
        return int(self._conn().execute("SELECT COUNT(*) FROM forgotten").fetchone()[0])

    def max_seq(self) -> int:
        row = self._conn().execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    def forget(self, user_id: str) -> dict[str, int]:
        """Delete every event, impression, setting and mute of ``user_id`` and record its salted
        hash (never the id) so later models leave the user out; returns the counts deleted."""
        with self._transaction("FULL") as conn:
            shown = conn.execute("SELECT COALESCE(SUM(json_array_length(items)), 0) FROM impression_slates "
                                 "WHERE user_id = ?", (user_id,)).fetchone()[0]
            counts = {t: conn.execute(f"DELETE FROM {t} WHERE user_id = ?", (user_id,)).rowcount
                      for t in ("events", "impression_slates", "settings", "mutes")}
            counts["impressions"] = int(shown)
            del counts["impression_slates"]
            conn.execute("INSERT OR REPLACE INTO forgotten (hash, ts) VALUES (?, ?)",
                         (hash_user(self._salt, user_id), int(time.time())))
        return counts


def _busy(exc: Exception) -> bool:
    """Whether ``exc`` says another connection holds the lock (worth waiting for)."""
    return any(word in str(exc).lower() for word in ("locked", "busy"))


def _unavailable(exc: sqlite3.OperationalError) -> Exception:
    """:class:`StoreUnavailable` for SQLite's "cannot write now" errors; others stay as they are."""
    text = str(exc).lower()
    if any(word in text for word in _UNAVAILABLE):
        return StoreUnavailable(str(exc))
    return exc
