"""The event log on PostgreSQL, shared by every replica (``GUANXI_EVENTS_DB=postgresql://...``).

The same :class:`~guanxi.serving.events.EventStore` contract as the SQLite log, over a ``psycopg``
connection pool:

- a feedback batch is one transaction, acknowledged after ``COMMIT`` returns (``synchronous_commit``
  on: flushed to the WAL); ``event_id`` is unique per user in the table, so a batch retried through
  another replica is stored once;
- appends take one transaction-scoped advisory lock, so ``seq`` values become visible in the order
  they were drawn: a retraining watermark never passes an event that commits later with a smaller
  ``seq`` (BIGSERIAL alone would allow that under concurrent writers);
- impressions are written with ``synchronous_commit`` off (they only feed frequency caps and the
  drift report) and are visible to every replica once committed;
- settings changes lock the user (advisory, per user id) so the mute cap holds across replicas;
- forget is final: every write checks the forget list inside its transaction, and ``forget``
  takes the append lock, the forget lock (impression writers hold it shared) and the user's lock,
  in that order, so no write of the user commits between its delete and its commit (every other
  transaction takes one of these locks only: no lock cycle).

The schema is created on first start by numbered migrations recorded in ``guanxi_schema``, under an
advisory lock so replicas starting together do not race.
"""
from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from guanxi.serving.event_stores import redact
from guanxi.serving.events import Appended, StoreUnavailable, UserSettings, check_mute_cap
from guanxi.serving.forget_list import ForgetList, hash_user

# Advisory lock keys (arbitrary, fixed): schema migrations, the event append order, and forget
# against impression writes (shared by writers, exclusive for a forget).
_MIGRATE_LOCK = 7_261_001
_APPEND_LOCK = 7_261_002
_FORGET_LOCK = 7_261_004

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
        type TEXT NOT NULL, ts BIGINT NOT NULL, value DOUBLE PRECISION, received_ts BIGINT NOT NULL,
        UNIQUE (user_id, event_id));
    CREATE TABLE impression_slates (
        seq BIGSERIAL PRIMARY KEY, user_id TEXT NOT NULL, ts BIGINT NOT NULL, model_version TEXT,
        items TEXT[] NOT NULL);
    CREATE INDEX impression_slates_user_ts ON impression_slates (user_id, ts);
    CREATE TABLE settings (
        user_id TEXT PRIMARY KEY, commercial_opt_out BOOLEAN NOT NULL DEFAULT FALSE, updated_ts BIGINT NOT NULL);
    CREATE TABLE mutes (user_id TEXT NOT NULL, target_id TEXT NOT NULL, PRIMARY KEY (user_id, target_id));
    CREATE TABLE forgotten (hash TEXT PRIMARY KEY, ts BIGINT NOT NULL);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # serving's recent view reads the last hours of events by arrival time
    "CREATE INDEX events_received_ts ON events (received_ts);",
)

# What /recommend reads about its user: settings, mutes and recent impressions, one round trip.
_USER_STATE = ("SELECT (SELECT commercial_opt_out FROM settings WHERE user_id = %(u)s), "
               "ARRAY(SELECT target_id FROM mutes WHERE user_id = %(u)s ORDER BY target_id), "
               "ARRAY(SELECT item FROM impression_slates, unnest(items) AS item "
               "      WHERE user_id = %(u)s AND ts >= %(t)s)")

_EVENT_COLUMNS = ["seq", "user_id", "item_id", "type", "ts", "value", "event_id", "received_ts"]


class PostgresEventStore:
    """PostgreSQL event log.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (libpq parameters allowed).
        busy_timeout_ms: how long a caller waits for a pooled connection, and a statement for a
            lock, before :class:`StoreUnavailable`.
        pool_size: most connections this process holds.
        create: run the migrations (False: a database without the schema is an error).
        statement_timeout_ms: the server cancels any statement running longer (None: no limit).

    Every connection has TCP keepalives and a TCP user timeout, so a peer that vanished (a
    restarted or partitioned database) is noticed in seconds instead of the kernel's two hours,
    and the pool checks a connection before handing it out, so one left broken by a restart is
    replaced instead of failing the request that draws it.

    Raises:
        ValueError: the database cannot be reached or lacks the schema; names the URL (password
            redacted).
    """

    def __init__(self, url: str, busy_timeout_ms: int = 5_000, pool_size: int = 8, create: bool = True,
                 statement_timeout_ms: int | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._errors = (psycopg.OperationalError,)
        alive = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
                 "tcp_user_timeout": 10_000, "connect_timeout": max(2, busy_timeout_ms // 1000)}
        options = f"-c lock_timeout={busy_timeout_ms}"
        if statement_timeout_ms:
            options += f" -c statement_timeout={statement_timeout_ms}"
        try:                  # one direct connection first: its error says why (refused, auth, no such db)
            conn = psycopg.connect(url, autocommit=True, **alive)
        except psycopg.Error as exc:
            raise ValueError(f"cannot reach the event log at {redact(url)}: {redact(str(exc).strip(), url)}") from None
        with conn:
            salt = self._migrate(conn, create)
        self._salt = bytes.fromhex(salt)
        self._async_args = {"autocommit": True, "options": options, **alive}
        self._pool_size = pool_size
        self._reader: _AsyncReader | None = None      # the event loop's own connections (user_state_async)
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, timeout=busy_timeout_ms / 1000, open=True,
            kwargs={"autocommit": True, "options": options, **alive}, check=ConnectionPool.check_connection,
            name="guanxi-events")

    def _migrate(self, conn, create: bool) -> str:
        """Bring the schema up to date (one transaction, under an advisory lock); returns the salt."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS guanxi_schema (version INTEGER NOT NULL)")
            version = conn.execute("SELECT MAX(version) FROM guanxi_schema").fetchone()[0] or 0
            if version < len(_MIGRATIONS) and not create:
                raise ValueError(f"no event log at {redact(self.url)} (schema version {version}); "
                                 "start the service once to create it")
            for number, sql in enumerate(_MIGRATIONS[version:], start=version + 1):
                conn.execute(sql)
                conn.execute("INSERT INTO guanxi_schema (version) VALUES (%s)", (number,))
            conn.execute("INSERT INTO meta (key, value) VALUES ('forget_salt', %s) ON CONFLICT DO NOTHING",
                         (secrets.token_hex(16),))
            return conn.execute("SELECT value FROM meta WHERE key = 'forget_salt'").fetchone()[0]

    def close(self) -> None:
        self._pool.close()

    async def user_state_async(self, user_id: str, since_ts: int) -> tuple[UserSettings, dict[str, int]]:
        """:meth:`user_state` without blocking the event loop: psycopg's asynchronous driver over a
        pool of the running loop's own (made on first use), so a slow or vanished database holds
        the request, never the worker.

        Raises:
            StoreUnavailable: the database did not answer (the caller bounds the wait).
        """
        import asyncio

        import psycopg

        loop = asyncio.get_running_loop()
        if self._reader is None or self._reader.loop is not loop:
            self._reader = _AsyncReader(self.url, self._async_args, self._pool_size, loop)
        try:
            opt_out, mutes, shown = await self._reader.fetch(_USER_STATE, {"u": user_id, "t": since_ts})
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(str(exc).strip() or type(exc).__name__) from exc
        return UserSettings(user_id, bool(opt_out), tuple(mutes)), dict(Counter(shown))

    @contextmanager
    def _read(self) -> Iterator:
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._errors as exc:
            raise StoreUnavailable(str(exc).strip()) from exc
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                raise StoreUnavailable("no free connection to the event log") from exc
            raise

    @contextmanager
    def _transaction(self, durable: bool = True) -> Iterator:
        """One write transaction; ``durable=False`` commits without waiting for the WAL flush.

        Raises:
            StoreUnavailable: the write could not be made (nothing of it is stored).
        """
        with self._read() as conn, conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield conn

    def append(self, events: list[dict]) -> Appended:
        """Store a validated batch durably, all or nothing (see ``SQLiteEventStore.append``)."""
        now = int(time.time())
        cols: list[list] = [[], [], [], [], [], [], []]
        for e in events:
            row = (e.get("event_id") or uuid.uuid4().hex, str(e["user_id"]), str(e["item_id"]), e["type"],
                   int(e["ts"]) if e.get("ts") is not None else now, e.get("value"), now)
            for col, value in zip(cols, row):
                col.append(value)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
            gone = self._forgotten_among(conn, set(cols[1]))
            if gone:
                keep = [j for j, u in enumerate(cols[1]) if u not in gone]
                cols = [[col[j] for j in keep] for col in cols]
            cur = conn.execute(
                "INSERT INTO events (event_id, user_id, item_id, type, ts, value, received_ts) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], "
                "%s::float8[], %s::bigint[]) ON CONFLICT (user_id, event_id) DO NOTHING", cols)
            stored = cur.rowcount
        return Appended(len(events), len(cols[0]) - stored)

    def log_impressions(self, user_id: str, item_ids: list[str], ts: int, model_version: str) -> None:
        self.log_impressions_many([(user_id, item_ids, ts, model_version)])

    def log_impressions_many(self, slates: list[tuple[str, list[str], int, str]]) -> None:
        """Log several slates ``(user_id, item_ids, ts, model_version)`` in one transaction."""
        rows = [(u, int(ts), v, list(items)) for u, items, ts, v in slates if items]
        if not rows:
            return
        with self._transaction(durable=False) as conn, conn.cursor() as cur:
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_FORGET_LOCK,))
            gone = self._forgotten_among(conn, {r[0] for r in rows})
            rows = [r for r in rows if r[0] not in gone] if gone else rows
            cur.executemany("INSERT INTO impression_slates (user_id, ts, model_version, items) "
                            "VALUES (%s, %s, %s, %s)", rows)

    def impression_counts(self, user_id: str, since_ts: int) -> dict[str, int]:
        """item_id -> impressions of the user at or after ``since_ts``."""
        with self._read() as conn:
            rows = conn.execute("SELECT item, COUNT(*) FROM impression_slates, unnest(items) AS item "
                                "WHERE user_id = %s AND ts >= %s GROUP BY item", (user_id, since_ts)).fetchall()
        return {item: int(n) for item, n in rows}

    def prune_impressions(self, before_ts: int) -> int:
        """Delete impressions older than ``before_ts``; returns how many items."""
        with self._transaction(durable=False) as conn:
            (n,) = conn.execute("WITH gone AS (DELETE FROM impression_slates WHERE ts < %s "
                                "RETURNING cardinality(items) AS n) SELECT COALESCE(SUM(n), 0) FROM gone",
                                (before_ts,)).fetchone()
        return int(n)

    def settings(self, user_id: str) -> UserSettings:
        """The user's settings (defaults when none were set); reads only."""
        with self._read() as conn:
            opt_out, mutes = conn.execute(
                "SELECT (SELECT commercial_opt_out FROM settings WHERE user_id = %(u)s), "
                "ARRAY(SELECT target_id FROM mutes WHERE user_id = %(u)s ORDER BY target_id)",
                {"u": user_id}).fetchone()
        return UserSettings(user_id, bool(opt_out), tuple(mutes))

    def user_state(self, user_id: str, since_ts: int) -> tuple[UserSettings, dict[str, int]]:
        """The user's settings and impression counts since ``since_ts`` in one round trip."""
        with self._read() as conn:
            opt_out, mutes, shown = conn.execute(_USER_STATE, {"u": user_id, "t": since_ts}).fetchone()
        return UserSettings(user_id, bool(opt_out), tuple(mutes)), dict(Counter(shown))

    def update_settings(self, user_id: str, commercial_opt_out: bool | None, mute: list[str],
                        unmute: list[str]) -> UserSettings:
        """Apply a settings change durably; see ``SQLiteEventStore.update_settings``.

        Raises:
            SettingsError: the mute list would exceed ``MAX_MUTES_TOTAL`` (nothing changes).
            StoreUnavailable: the store cannot take the write.
        """
        if commercial_opt_out is None and not mute and not unmute:
            return self.settings(user_id)
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (user_id,))
            if self._forgotten_among(conn, {user_id}):
                return UserSettings(user_id)           # forgotten: nothing is stored for them again
            if commercial_opt_out is not None:
                conn.execute("INSERT INTO settings (user_id, commercial_opt_out, updated_ts) VALUES (%s, %s, %s) "
                             "ON CONFLICT (user_id) DO UPDATE SET commercial_opt_out = excluded.commercial_opt_out, "
                             "updated_ts = excluded.updated_ts", (user_id, bool(commercial_opt_out), int(time.time())))
            if mute:
                conn.execute("INSERT INTO mutes (user_id, target_id) SELECT %s, t FROM unnest(%s::text[]) AS t "
                             "ON CONFLICT DO NOTHING", (user_id, list(mute)))
            if unmute:
                conn.execute("DELETE FROM mutes WHERE user_id = %s AND target_id = ANY(%s::text[])",
                             (user_id, list(unmute)))
            check_mute_cap(conn.execute("SELECT COUNT(*) FROM mutes WHERE user_id = %s", (user_id,)).fetchone()[0])
        return self.settings(user_id)

    def events_since(self, seq: int = 0, upto: int | None = None) -> pd.DataFrame:
        """Feedback events with ``seq < seq' <= upto`` (no upper bound when None), oldest first."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE seq > %s AND seq <= %s "
                                "ORDER BY seq", (seq, upto if upto is not None else 2**62)).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=_EVENT_COLUMNS)
        return frame.astype({"seq": "int64", "ts": "int64", "received_ts": "int64", "value": "float64"})

    def recent_events(self, after_seq: int, since_ts: int, limit: int,
                      types: tuple[str, ...] | None = None) -> list[tuple]:
        """See ``SQLiteEventStore.recent_events``."""
        with self._read() as conn:
            return conn.execute(
                "SELECT seq, user_id, item_id, type, received_ts FROM events WHERE seq > %s AND received_ts >= %s "
                "AND type != 'impression' AND (%s::text[] IS NULL OR type = ANY(%s::text[])) ORDER BY seq LIMIT %s",
                (after_seq, since_ts, list(types) if types else None, list(types) if types else None,
                 limit)).fetchall()

    def impressions_since(self, seq: int = 0) -> pd.DataFrame:
        """Logged impressions with ``seq > seq``, oldest first, one row per item."""
        with self._read() as conn:
            rows = conn.execute("SELECT s.seq, s.user_id, j.item, s.ts, s.model_version "
                                "FROM impression_slates AS s, unnest(s.items) WITH ORDINALITY AS j(item, n) "
                                "WHERE s.seq > %s ORDER BY s.seq, j.n", (seq,)).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=["seq", "user_id", "item_id", "ts", "model_version"])
        return frame.astype({"seq": "int64", "ts": "int64"})

    def drop_forgotten_impressions(self, forget: ForgetList, since_ts: int) -> int:
        """Delete impressions logged at or after ``since_ts`` for users on ``forget``; returns how
        many slates."""
        with self._read() as conn:
            users = [r[0] for r in conn.execute(
                "SELECT DISTINCT user_id FROM impression_slates WHERE ts >= %s", (since_ts,)).fetchall()]
        gone = [u for u, hit in zip(users, forget.mask(users)) if hit]
        if not gone:
            return 0
        with self._transaction(durable=False) as conn:
            return conn.execute("DELETE FROM impression_slates WHERE user_id = ANY(%s::text[])", (gone,)).rowcount

    def _forgotten_among(self, conn, users: set[str]) -> set[str]:
        """Which of ``users`` are on the forget list, read inside the caller's transaction."""
        if not users:
            return set()
        hashes = {hash_user(self._salt, u): u for u in users}
        rows = conn.execute("SELECT hash FROM forgotten WHERE hash = ANY(%s::text[])", (list(hashes),)).fetchall()
        return {hashes[h] for (h,) in rows}

    def forget_list(self) -> ForgetList:
        with self._read() as conn:
            rows = conn.execute("SELECT hash FROM forgotten").fetchall()
        return ForgetList(self._salt, (r[0] for r in rows))

    def forgotten_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM forgotten").fetchone()[0])

    def max_seq(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def forget(self, user_id: str) -> dict[str, int]:
        """Delete every event, impression, setting and mute of ``user_id`` and record its salted hash."""
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_FORGET_LOCK,))
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (user_id,))
            (shown,) = conn.execute("SELECT COALESCE(SUM(cardinality(items)), 0) FROM impression_slates "
                                    "WHERE user_id = %s", (user_id,)).fetchone()
            counts = {t: conn.execute(f"DELETE FROM {t} WHERE user_id = %s", (user_id,)).rowcount
                      for t in ("events", "impression_slates", "settings", "mutes")}
            counts["impressions"] = int(shown)
            del counts["impression_slates"]
            conn.execute("INSERT INTO forgotten (hash, ts) VALUES (%s, %s) ON CONFLICT (hash) DO UPDATE "
                         "SET ts = excluded.ts", (hash_user(self._salt, user_id), int(time.time())))
        return counts


class _AsyncReader:
    """A few asynchronous connections of one event loop for the read ``/recommend`` makes.

    No background task (psycopg's asynchronous pool keeps some, and a worker's loop would wait on
    them when it closes): a request takes an idle connection or opens one, at most ``size`` at a
    time, and gives it back when the query went through. A connection a cancelled or failed query
    leaves behind is closed on the spot; an idle one found broken (the database restarted since)
    is replaced once, so a restart costs no request that comes after it.
    """

    def __init__(self, url: str, kwargs: dict, size: int, loop) -> None:
        import asyncio

        self.url, self.kwargs, self.size, self.loop = url, kwargs, size, loop
        self._idle: list = []
        self._slots = asyncio.Semaphore(size)

    async def fetch(self, sql: str, params: dict) -> tuple:
        """The first row of ``sql``."""
        import psycopg

        async with self._slots:
            for attempt in range(2):
                conn = self._idle.pop() if self._idle else None
                reused = conn is not None
                if conn is None:
                    conn = await psycopg.AsyncConnection.connect(self.url, **self.kwargs)
                try:
                    cur = await conn.execute(sql, params)
                    row = await cur.fetchone()
                except psycopg.OperationalError:
                    conn.pgconn.finish()
                    if reused and attempt == 0:
                        continue
                    raise
                except BaseException:
                    conn.pgconn.finish()          # cancelled mid-query: its state is unknown
                    raise
                self._idle.append(conn)
                return row
        raise AssertionError("unreachable")
