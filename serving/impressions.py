"""Impressions are logged off the request path: a background thread commits them in batches, so a
request never waits on a disk write or a WAL checkpoint.

Until its batch is committed, an impression is counted from memory, so this worker's frequency caps
stay exact. Another worker sees it once committed (within ``flush_every`` seconds); a crash loses at
most that much, which only loosens a frequency cap.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Callable

from guanxi.serving.events import EventStore

logger = logging.getLogger(__name__)


class ImpressionLog:
    """Buffered impression writer with in-memory counts of what is not committed yet.

    Args:
        store: the event log that persists impressions.
        flush_every: seconds between background commits.
        forgotten: user_id -> whether the user asked to be forgotten (their slates are dropped at
            the flush, so none outlives a forget that ran while it waited).
    """

    def __init__(self, store: EventStore, flush_every: float = 0.05,
                 forgotten: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.flush_every = flush_every
        self.forgotten = forgotten
        self._lock = threading.Lock()
        self._pending: list[tuple[str, list[str], int, str]] = []
        self._counts: dict[str, Counter] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="guanxi-impressions")
        self._thread.start()

    def log(self, user_id: str, item_ids: list[str], ts: int, model_version: str) -> None:
        if not item_ids:
            return
        with self._lock:
            self._pending.append((user_id, item_ids, ts, model_version))
            self._counts.setdefault(user_id, Counter()).update(item_ids)

    def counts(self, user_id: str, since_ts: int) -> dict[str, int]:
        """item_id -> impressions of the user since ``since_ts``: committed plus pending."""
        return self.with_pending(user_id, self.store.impression_counts(user_id, since_ts))

    def with_pending(self, user_id: str, committed: dict[str, int]) -> dict[str, int]:
        """``committed`` counts (read from the store) plus this worker's pending ones for the user."""
        with self._lock:
            pending = dict(self._counts.get(user_id, {}))
        for item, n in pending.items():
            committed[item] = committed.get(item, 0) + n
        return committed

    def flush(self) -> int:
        """Commit what is pending now; returns the number of slates written."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        kept = [slate for slate in batch if self.forgotten is None or not self.forgotten(slate[0])]
        try:
            self.store.log_impressions_many(kept)
        except Exception:  # noqa: BLE001 - keep serving; the cap just loosens for these
            logger.exception("could not log %d slates of impressions", len(batch))
        with self._lock:
            for user_id, item_ids, _, _ in batch:
                c = self._counts.get(user_id)
                if c is not None:
                    c.subtract(item_ids)
                    if not +c:
                        del self._counts[user_id]
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every):
            self.flush()
        self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
