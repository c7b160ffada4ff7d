"""The event log behind ``/feedback``, ``/settings`` and the impression log (frequency caps).

One small interface (:class:`EventStore`); the default is SQLite in WAL mode
(:class:`SQLiteEventStore`). Feedback batches are committed with ``synchronous=FULL`` before the
service acknowledges them, in one transaction (a batch is stored whole or not at all); a repeated
``event_id`` is ignored, so a retried batch is stored once. Every row carries a monotonically
increasing ``seq`` that retraining uses as its watermark. Impressions are logged with
``synchronous=NORMAL`` (a crash may lose the last few; they only feed frequency caps) and deleted
after the retention window. They are stored one row per returned slate (its item ids as a JSON
array): a row per item cost ~130 us of SQLite work per request; readers see one row per item.
"""
from __future__ import annotations

import json
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL, value REAL, received_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS impression_slates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, ts INTEGER NOT NULL,
    model_version TEXT, items TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS impression_slates_user_ts ON impression_slates (user_id, ts);
CREATE TABLE IF NOT EXISTS settings (
    user_id TEXT PRIMARY KEY, commercial_opt_out INTEGER NOT NULL DEFAULT 0, updated_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mutes (
    user_id TEXT NOT NULL, target_id TEXT NOT NULL, PRIMARY KEY (user_id, target_id));
CREATE TABLE IF NOT EXISTS forgotten (user_id TEXT PRIMARY KEY, ts INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class UserSettings:
    user_id: str
    commercial_opt_out: bool = False
    mute: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"user_id": self.user_id, "commercial_opt_out": self.commercial_opt_out,
                "mute": list(self.mute)}


class EventStore(Protocol):
    """What the service and the retraining job need from an event log."""

    def append(self, events: list[dict]) -> int: ...
    def log_impressions(self, user_id: str, item_ids: list[str], ts: int, model_version: str) -> None: ...
    def log_impressions_many(self, slates: list[tuple[str, list[str], int, str]]) -> None: ...
    def impression_counts(self, user_id: str, since_ts: int) -> dict[str, int]: ...
    def settings(self, user_id: str) -> UserSettings: ...
    def update_settings(self, user_id: str, commercial_opt_out: bool | None, mute: list[str],
                        unmute: list[str]) -> UserSettings: ...
    def events_since(self, seq: int) -> pd.DataFrame: ...
    def impressions_since(self, seq: int) -> pd.DataFrame: ...
    def prune_impressions(self, before_ts: int) -> int: ...
    def forget(self, user_id: str) -> dict[str, int]: ...
    def forgotten_users(self) -> set[str]: ...
    def max_seq(self) -> int: ...


class SQLiteEventStore:
    """SQLite event log (one file; one connection per thread, WAL so readers never block writers).

    Args:
        path: database file; created with its tables when missing.
        busy_timeout_ms: how long a writer waits for another process's lock.
    """

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy = busy_timeout_ms
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        self._migrate_impressions()

    def _migrate_impressions(self) -> None:
        """Move a log written one row per item (the earlier layout) into slates, keeping each
        slate's last ``seq`` so that retraining watermarks stay valid; then drop the old table."""
        with self._transaction("FULL") as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'impressions'").fetchone():
                return
            conn.execute("INSERT INTO impression_slates (seq, user_id, ts, model_version, items) "
                         "SELECT MAX(seq), user_id, ts, model_version, json_group_array(item_id) "
                         "FROM (SELECT * FROM impressions ORDER BY seq) GROUP BY user_id, ts, model_version")
            conn.execute("DROP TABLE impressions")

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
        """One write transaction (``synchronous`` FULL: fsync at commit; NORMAL: at checkpoints)."""
        conn = self._conn()
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def append(self, events: list[dict]) -> int:
        """Store a validated batch durably (fsync before returning), all or nothing.

        Args:
            events: dicts with ``user_id``, ``item_id``, ``type`` and optional ``ts`` (default now),
                ``value``, ``event_id`` (default a fresh uuid: such an event is not idempotent).

        Returns:
            the number of events in the batch (events already stored count: they are stored).
        """
        now = int(time.time())
        rows = [(e.get("event_id") or uuid.uuid4().hex, str(e["user_id"]), str(e["item_id"]), e["type"],
                 int(e["ts"]) if e.get("ts") is not None else now, e.get("value"), now) for e in events]
        with self._transaction("FULL") as conn:
            conn.executemany("INSERT OR IGNORE INTO events (event_id, user_id, item_id, type, ts, value, "
                             "received_ts) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def log_impressions(self, user_id: str, item_ids: list[str], ts: int, model_version: str) -> None:
        self.log_impressions_many([(user_id, item_ids, ts, model_version)])

    def log_impressions_many(self, slates: list[tuple[str, list[str], int, str]]) -> None:
        """Log several slates ``(user_id, item_ids, ts, model_version)`` in one transaction."""
        rows = [(u, ts, v, json.dumps(items)) for u, items, ts, v in slates if items]
        if not rows:
            return
        with self._transaction("NORMAL") as conn:
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
        # One statement (read on every /recommend): the opt-out flag and the mutes as a JSON array.
        opt_out, mutes = self._conn().execute(
            "SELECT (SELECT commercial_opt_out FROM settings WHERE user_id = ?1), "
            "(SELECT json_group_array(target_id) FROM mutes WHERE user_id = ?1)", (user_id,)).fetchone()
        return UserSettings(user_id, bool(opt_out), tuple(sorted(json.loads(mutes))))

    def update_settings(self, user_id: str, commercial_opt_out: bool | None, mute: list[str],
                        unmute: list[str]) -> UserSettings:
        """Apply a settings change durably and return the user's settings after it."""
        with self._transaction("FULL") as conn:
            current = conn.execute("SELECT commercial_opt_out FROM settings WHERE user_id = ?",
                                   (user_id,)).fetchone()
            opt = commercial_opt_out if commercial_opt_out is not None else bool(current and current[0])
            conn.execute("INSERT INTO settings (user_id, commercial_opt_out, updated_ts) VALUES (?, ?, ?) "
                         "ON CONFLICT(user_id) DO UPDATE SET commercial_opt_out = excluded.commercial_opt_out, "
                         "updated_ts = excluded.updated_ts", (user_id, int(opt), int(time.time())))
            conn.executemany("INSERT OR IGNORE INTO mutes (user_id, target_id) VALUES (?, ?)",
                             [(user_id, m) for m in mute])
            conn.executemany("DELETE FROM mutes WHERE user_id = ? AND target_id = ?",
                             [(user_id, m) for m in unmute])
        return self.settings(user_id)

    def events_since(self, seq: int = 0) -> pd.DataFrame:
        """Feedback events with ``seq > seq``, oldest first (columns of the events table + seq)."""
        return pd.read_sql_query(
            "SELECT seq, user_id, item_id, type, ts, value, event_id FROM events WHERE seq > ? ORDER BY seq",
            self._conn(), params=(seq,))

    def impressions_since(self, seq: int = 0) -> pd.DataFrame:
        """Logged impressions with ``seq > seq``, oldest first."""
        return pd.read_sql_query(
            "SELECT s.seq, s.user_id, j.value AS item_id, s.ts, s.model_version "
            "FROM impression_slates AS s, json_each(s.items) AS j WHERE s.seq > ? ORDER BY s.seq, j.key",
            self._conn(), params=(seq,))

    def forgotten_users(self) -> set[str]:
        """Users who asked to be forgotten: kept out of every later model."""
        return {r[0] for r in self._conn().execute("SELECT user_id FROM forgotten").fetchall()}

    def max_seq(self) -> int:
        row = self._conn().execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    def forget(self, user_id: str) -> dict[str, int]:
        """Delete every event, impression, setting and mute of ``user_id`` and remember the id so
        retraining drops the user from the base data too; returns the counts deleted."""
        with self._transaction("FULL") as conn:
            shown = conn.execute("SELECT COALESCE(SUM(json_array_length(items)), 0) FROM impression_slates "
                                 "WHERE user_id = ?", (user_id,)).fetchone()[0]
            counts = {t: conn.execute(f"DELETE FROM {t} WHERE user_id = ?", (user_id,)).rowcount
                      for t in ("events", "impression_slates", "settings", "mutes")}
            counts = {("impressions" if t == "impression_slates" else t): (int(shown) if t == "impression_slates" else n)
                      for t, n in counts.items()}
            conn.execute("INSERT OR REPLACE INTO forgotten (user_id, ts) VALUES (?, ?)",
                         (user_id, int(time.time())))
        return counts
