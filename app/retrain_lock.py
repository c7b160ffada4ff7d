"""One retrain at a time: an exclusive ``flock`` on a lock file beside a SQLite event log, or a
PostgreSQL advisory lock beside a shared one. Both are released when the holder exits, SIGKILL
included, so a killed retrain never leaves a stale lock.

A lock can also be lost while held: the PostgreSQL lock belongs to a session, which a dropped
connection (a database restart, a network partition, an idle-connection reaper) ends silently,
and a lock file deleted from under its holder lets the next retrain lock a new file at the same
path. :meth:`check` tells, and a retrain calls it right before it registers or promotes anything
(:class:`RetrainLockLost`: nothing is published by a retrain that may overlap another)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RetrainBusy(RuntimeError):
    """Another retrain holds the lock."""


class RetrainLockLost(RuntimeError):
    """The lock was lost while held: another retrain may be running."""


class RetrainLock:
    """Context manager holding an exclusive lock on ``path``.

    Raises:
        RetrainBusy: on enter, when another process holds it (the message names its pid).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> "RetrainLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RetrainBusy(f"another retrain is running (pid {holder}, lock {self.path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def check(self) -> None:
        """Raise :class:`RetrainLockLost` unless the locked file is still the one at the path."""
        try:
            same = self._fd is not None and os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            raise RetrainLockLost(f"the retrain lock file {self.path} was removed while this retrain held it; "
                                  "another retrain may be running, so nothing is registered or promoted")

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PostgresRetrainLock:
    """The same lock held in PostgreSQL (a session advisory lock on the event log's database), so
    that two schedulers on different machines cannot overlap; the server releases it when the
    holder's connection ends, a killed holder included.

    Raises:
        RetrainBusy: on enter, when another database connection holds it (the message names its pid and host).
    """

    KEY = 7_261_003

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn = None

    def __enter__(self) -> "PostgresRetrainLock":
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, application_name="guanxi-retrain", keepalives=1,
                               keepalives_idle=5, keepalives_interval=2, keepalives_count=3)
        (got,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.KEY,)).fetchone()
        if not got:
            holder = conn.execute(
                "SELECT a.pid, COALESCE(host(a.client_addr), 'local') FROM pg_locks AS l "
                "JOIN pg_stat_activity AS a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.objid = %s AND l.granted LIMIT 1", (self.KEY,)).fetchone()
            conn.close()
            who = f"backend pid {holder[0]} from {holder[1]}" if holder else "another database connection"
            raise RetrainBusy(f"another retrain is running ({who}, advisory lock {self.KEY} in the event log's database)")
        self._conn = conn
        return self

    def check(self) -> None:
        """Raise :class:`RetrainLockLost` unless this database connection is alive and still holds the lock."""
        import psycopg

        try:
            (held,) = self._conn.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
                "AND pid = pg_backend_pid() AND granted", (self.KEY,)).fetchone()
        except (psycopg.Error, AttributeError) as exc:
            raise RetrainLockLost(f"the retrain lock's database session ended ({str(exc).strip() or 'closed'}); "
                                  "another retrain may be running, so nothing is registered or promoted") from None
        if not held:
            raise RetrainLockLost("this database connection no longer holds the retrain lock; "
                                  "nothing is registered or promoted")

    def __exit__(self, *exc) -> None:
        if self._conn is not None:
            self._conn.close()            # ends the session, which releases the lock
            self._conn = None


def retrain_lock_for(events_db: str | Path) -> "RetrainLock | PostgresRetrainLock":
    """The retrain lock that goes with an event log: a lock file beside a SQLite log, an advisory
    lock in a PostgreSQL log's database."""
    from guanxi.serving.event_stores import parse_event_log

    target = parse_event_log(events_db)
    if target.kind == "postgresql":
        return PostgresRetrainLock(target.url or "")
    return RetrainLock(Path(str(target.path) + ".retrain.lock"))
