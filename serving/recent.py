"""Every worker's view of the feedback acknowledged in the last hours: what the user and their
contacts did since the served version was trained (docs/serving.md, "Real time").

The view is fed from the event log (SQLite or PostgreSQL) by one background thread: a first load
of the window, then every ``recent_refresh_seconds`` only the events past the last ``seq`` read, so
an event acknowledged by any replica reaches every replica's view within about one refresh. It
holds:

- per user, their engagements (every type but ``impression`` and ``hide``) received within
  ``recent_window_hours`` and after the served version's events watermark (``floor``: events up
  to it are in the version's history already, so nothing counts twice; a promotion raises it and
  drops what the new version holds, a rollback lowers it and reloads);
- per user, the items they hid within ``fatigue_days``, whatever the watermark (the version knows
  the item as consumed, not the account's fatigue).

Memory is bounded: at most ``recent_max_per_user`` events per user (the newest kept) and
``recent_max_events`` in all (the oldest go first); events leave as they age out of the window.
A forgotten user's events are never loaded, and :meth:`RecentView.forget` drops them from the
view when the forget list changes. Readers take one lock for a few dictionary reads; every change
to a user bumps that user's generation, which lets a served version cache what it derived.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from typing import Callable

from guanxi.features.schema import ITEM_EVENT_TYPES
from guanxi.serving.events import EventStore
from guanxi.serving.forget_list import ForgetList
from guanxi.serving.policy import PolicyConfig

logger = logging.getLogger(__name__)

TYPE_CODE = {t: i for i, t in enumerate(ITEM_EVENT_TYPES)}
HIDE = TYPE_CODE["hide"]

# One recorded event: (seq, item_id, type code, received_ts).
Event = tuple[int, str, int, int]


class RecentView:
    """See the module doc.

    Args:
        store: the event log.
        policy: its ``recent_*`` and ``fatigue_days`` knobs.
        forgotten: ``user_id -> bool``: users whose events are never loaded.
        clock: the time (injected by tests).
        batch: rows read per store call.
    """

    def __init__(self, store: EventStore, policy: PolicyConfig, forgotten: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.time, batch: int = 20_000) -> None:
        self.store = store
        self.window_s = policy.recent_window_hours * 3600
        self.fatigue_s = policy.fatigue_days * 86400
        self.max_per_user = policy.recent_max_per_user
        self.max_events = policy.recent_max_events
        self.refresh_s = policy.recent_refresh_seconds
        self.forgotten = forgotten
        self.clock = clock
        self.batch = batch
        self._lock = threading.Lock()
        self._events: dict[str, deque[Event]] = {}
        self._hides: dict[str, dict[str, int]] = {}
        self._order: deque[tuple[int, str]] = deque()       # (received_ts, user) per event, arrival order
        self._gen: dict[str, int] = {}
        self._total = 0
        self._refreshes = 0
        self.seq = 0                 # the last seq read
        self.floor = 0               # the served version's events watermark
        self._wanted: int | None = None
        self.loaded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- feeding ---------------------------------------------------------------------------------

    def load(self, floor: int = 0) -> None:
        """Read the window afresh, keeping only engagements after ``floor`` (blocking)."""
        now = int(self.clock())
        rows = self._read_all(floor, now - int(self.window_s), None)
        hides = self._read_all(0, now - int(self.fatigue_s), ("hide",))
        with self._lock:
            self._events, self._hides, self._order, self._total = {}, {}, deque(), 0
            self._gen = {u: g + 1 for u, g in self._gen.items()}
            self.floor = floor
            self._insert(hides, now, hides_only=True)
            self._insert(rows, now)
            self.seq = max([floor] + [r[0] for r in rows])
            self.loaded = True
        logger.info("recent view: %d events of %d users in the last %.0f h after seq %d, %d users with hides",
                    self._total, len(self._events), self.window_s / 3600, floor, len(self._hides))

    def refresh(self) -> int:
        """Read the events acknowledged since the last read; returns how many."""
        if not self.loaded:
            self.load(self.floor)
            return self._total
        now = int(self.clock())
        rows = self._read_all(self.seq, now - int(max(self.window_s, self.fatigue_s)), None)
        with self._lock:
            self._insert(rows, now)
            if rows:
                self.seq = max(self.seq, rows[-1][0])
            self._expire(now)
        return len(rows)

    def _read_all(self, after_seq: int, since_ts: int, types: tuple[str, ...] | None) -> list[tuple]:
        rows: list[tuple] = []
        while True:
            part = self.store.recent_events(after_seq, since_ts, self.batch, types)
            rows += part
            if len(part) < self.batch:
                return rows
            after_seq = part[-1][0]

    def _insert(self, rows: list[tuple], now: int, hides_only: bool = False) -> None:
        """Add ``rows`` (under the lock): hides to the hide map, the rest to the window."""
        cutoff = now - self.window_s
        for seq, user, item, kind, received in rows:
            if self.forgotten is not None and self.forgotten(user):
                continue
            code = TYPE_CODE.get(kind, -1)
            item = sys.intern(str(item))
            if code == HIDE:
                self._hides.setdefault(user, {})[item] = int(received)
                self._gen[user] = self._gen.get(user, 0) + 1
                continue
            if hides_only or code < 0 or received < cutoff or seq <= self.floor:
                continue
            events = self._events.get(user)
            if events is None:
                events = self._events[user] = deque()
            events.append((int(seq), item, code, int(received)))
            self._order.append((int(received), user))
            self._total += 1
            self._gen[user] = self._gen.get(user, 0) + 1
            if len(events) > self.max_per_user:
                events.popleft()
                self._total -= 1
        while self._total > self.max_events and self._order:
            _, user = self._order.popleft()
            events = self._events.get(user)
            if events:
                events.popleft()
                self._total -= 1
                self._gen[user] += 1
                if not events:
                    del self._events[user]

    def _expire(self, now: int) -> None:
        """Drop events past the window and hides past the fatigue period (under the lock)."""
        cutoff = now - self.window_s
        while self._order and self._order[0][0] < cutoff:
            _, user = self._order.popleft()
            events = self._events.get(user)
            while events and events[0][3] < cutoff:
                events.popleft()
                self._total -= 1
                self._gen[user] += 1
            if events is not None and not events:
                del self._events[user]
        self._refreshes += 1
        if self._refreshes % 100 == 0:                  # hides age slowly: sweep now and then
            tired = now - self.fatigue_s
            for user in list(self._hides):
                kept = {i: t for i, t in self._hides[user].items() if t >= tired}
                if len(kept) != len(self._hides[user]):
                    self._gen[user] = self._gen.get(user, 0) + 1
                    if kept:
                        self._hides[user] = kept
                    else:
                        del self._hides[user]
        if len(self._order) > 2 * max(self._total, 1) + 1000:     # entries left by per-user evictions
            self._order = deque((t, u) for t, u in self._order if u in self._events)

    def set_floor(self, floor: int) -> None:
        """Keep only engagements after ``floor`` (the served version's events watermark): a higher
        one drops what the version holds, a lower one (a rollback) reloads the window."""
        if floor == self.floor:
            return
        if floor < self.floor or not self.loaded:
            self.load(floor)
            return
        with self._lock:
            for user in list(self._events):
                events = self._events[user]
                kept = deque(e for e in events if e[0] > floor)
                if len(kept) != len(events):
                    self._total -= len(events) - len(kept)
                    self._gen[user] += 1
                    if kept:
                        self._events[user] = kept
                    else:
                        del self._events[user]
            self.floor = floor

    def want_floor(self, floor: int) -> None:
        """Move to ``floor`` at the next refresh (on the view's thread: a request never waits)."""
        self._wanted = floor

    def forget(self, forget_list: ForgetList) -> int:
        """Drop every event and hide of the users on ``forget_list``; returns how many users."""
        with self._lock:
            users = sorted(set(self._events) | set(self._hides))
            gone = [u for u, hit in zip(users, forget_list.mask(users)) if hit] if users and len(forget_list) else []
            for user in gone:
                self._total -= len(self._events.pop(user, ()))
                self._hides.pop(user, None)
                self._gen[user] = self._gen.get(user, 0) + 1
        return len(gone)

    # -- the background thread -------------------------------------------------------------------

    def start(self) -> None:
        """Refresh every ``recent_refresh_seconds`` on a daemon thread (the first load included)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="guanxi-recent")
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                wanted, self._wanted = self._wanted, None
                if wanted is not None:
                    self.set_floor(wanted)
                self.refresh()
            except Exception:  # noqa: BLE001 - a store outage must not end the view; it catches up later
                logger.exception("recent view refresh failed; retrying")
            if self._stop.wait(self.refresh_s):
                return

    def stop(self) -> None:
        self._stop.set()

    # -- reading -----------------------------------------------------------------------------------

    def generation(self, user_id: str) -> int:
        """A number that changes whenever the user's events or hides change."""
        return self._gen.get(user_id, 0)

    def own(self, user_id: str) -> list[Event]:
        """The user's engagements in the window, oldest first."""
        with self._lock:
            return list(self._events.get(user_id, ()))

    def hidden(self, user_id: str, now: float | None = None) -> list[str]:
        """Items the user hid within the fatigue period."""
        tired = (self.clock() if now is None else now) - self.fatigue_s
        with self._lock:
            return [i for i, t in self._hides.get(user_id, {}).items() if t >= tired]

    def active(self, user_ids: list[str]) -> list[int]:
        """Positions in ``user_ids`` of the users with engagements in the view (a request's
        contacts: whose engagements to read)."""
        events = self._events
        return [pos for pos, user in enumerate(user_ids) if user in events]

    def size(self) -> dict[str, int]:
        """Events, users and hides held now."""
        with self._lock:
            return {"events": self._total, "users": len(self._events),
                    "hides": sum(len(h) for h in self._hides.values())}
