"""Earlier layouts of the SQLite event log, brought up to today's when a log is opened.

Each step looks for the old shape and rewrites it inside the opening transaction, so a log is
either migrated whole or not at all; a log already current is left alone.
"""
from __future__ import annotations

import secrets
import sqlite3

from guanxi.serving.forget_list import hash_user


def migrate(conn: sqlite3.Connection) -> None:
    """Every step, in order (run inside a write transaction)."""
    _impressions_per_item(conn)
    _event_id_unique_per_user(conn)
    _forgotten_as_hashes(conn)


def _table_sql(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row[0] if row else None


def _impressions_per_item(conn: sqlite3.Connection) -> None:
    """A log written one row per item: move it into slates, keeping each slate's last ``seq`` so
    that retraining watermarks stay valid; then drop the old table."""
    if _table_sql(conn, "impressions") is None:
        return
    conn.execute("CREATE TABLE IF NOT EXISTS impression_slates (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "user_id TEXT NOT NULL, ts INTEGER NOT NULL, model_version TEXT, items TEXT NOT NULL)")
    conn.execute("INSERT INTO impression_slates (seq, user_id, ts, model_version, items) "
                 "SELECT MAX(seq), user_id, ts, model_version, json_group_array(item_id) "
                 "FROM (SELECT * FROM impressions ORDER BY seq) GROUP BY user_id, ts, model_version")
    conn.execute("DROP TABLE impressions")


def _event_id_unique_per_user(conn: sqlite3.Connection) -> None:
    """``event_id`` was unique across all users, so one user's id silently dropped another user's
    event: rebuild the table unique per (user, event_id), keeping every row and its ``seq``."""
    sql = _table_sql(conn, "events")
    if sql is None or "UNIQUE (user_id, event_id)" in sql:
        return
    conn.execute("ALTER TABLE events RENAME TO events_old")
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, "
                 "user_id TEXT NOT NULL, item_id TEXT NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL, "
                 "value REAL, received_ts INTEGER NOT NULL, UNIQUE (user_id, event_id))")
    conn.execute("INSERT INTO events SELECT seq, event_id, user_id, item_id, type, ts, value, received_ts "
                 "FROM events_old ORDER BY seq")
    conn.execute("DROP TABLE events_old")


def _forgotten_as_hashes(conn: sqlite3.Connection) -> None:
    """Forgotten users were stored by id: replace each with its salted hash."""
    sql = _table_sql(conn, "forgotten")
    if sql is None or "user_id" not in sql:
        return
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    if not conn.execute("SELECT 1 FROM meta WHERE key = 'forget_salt'").fetchone():
        conn.execute("INSERT INTO meta (key, value) VALUES ('forget_salt', ?)", (secrets.token_hex(16),))
    salt = bytes.fromhex(conn.execute("SELECT value FROM meta WHERE key = 'forget_salt'").fetchone()[0])
    rows = conn.execute("SELECT user_id, ts FROM forgotten").fetchall()
    conn.execute("DROP TABLE forgotten")
    conn.execute("CREATE TABLE forgotten (hash TEXT PRIMARY KEY, ts INTEGER NOT NULL)")
    conn.executemany("INSERT OR REPLACE INTO forgotten (hash, ts) VALUES (?, ?)",
                     [(hash_user(salt, u), ts) for u, ts in rows])
