"""What each endpoint does, without HTTP (the BentoML service in ``service.py`` only adapts).

Holds the served model (:class:`guanxi.serving.champion.ChampionHolder`), the event log and the policy,
and follows the event log's forget list: within one poll interval of ``guanxi forget``, the
forgotten user is served as a stranger (no history, no contacts, no impressions logged) and
disappears from every other user's reasons and counts.

A recent view (:mod:`guanxi.serving.recent`) follows the event log on its own thread, so what any
replica acknowledged a moment ago shapes the next slate; each served version reads it past its own
training watermark (a swap moves the view's floor on that thread, within one refresh).

The event loop never waits on a remote event log: on PostgreSQL ``/recommend`` reads the user's
settings and impression counts in one round trip through psycopg's asynchronous driver, while the
model scores the user, bounded by ``store_timeout_s`` (a store that does not answer in time is a
:class:`StoreUnavailable`, 503 with ``Retry-After``, while ``/livez`` and every other request keep
being answered). The embedded SQLite log is read in place: a local WAL read never waits for a
writer and takes tens of microseconds, where handing it to a thread cost a quarter of a millisecond
a request here (experiments/LOG.md). Housekeeping (the forget-list poll, the impression prune) runs
on its own thread; a failure there is logged and retried, never a request's.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

from guanxi.serving.batcher import MicroBatcher
from guanxi.serving.champion import ChampionHolder, Served
from guanxi.serving.events import EventStore, StoreUnavailable, UserSettings
from guanxi.serving.forget_list import ForgetList
from guanxi.serving.impressions import ImpressionLog
from guanxi.serving.policy import PolicyConfig
from guanxi.serving.recent import RecentView
from guanxi.serving.scores import Scored

logger = logging.getLogger(__name__)

# Impressions older than the retention window are pruned at most this often (seconds).
PRUNE_EVERY_S = 600.0


class RecommendationAPI:
    """The endpoints' logic.

    Args:
        holder: the served model and its alias follower.
        store: the event log (feedback, settings, impressions, forget list).
        policy: the exposure policy.
        poll_seconds: how often a background thread re-reads the forget list (0: every second).
        store_timeout_s: how long ``/recommend`` waits for the user's settings and impressions.
    """

    def __init__(self, holder: ChampionHolder, store: EventStore, policy: PolicyConfig,
                 poll_seconds: float = 10.0, store_timeout_s: float = 2.0) -> None:
        self.holder = holder
        self.store = store
        self.policy = policy
        self.store_timeout_s = store_timeout_s
        self._last_prune = 0.0
        self._batcher: MicroBatcher | None = None
        self.impressions = ImpressionLog(store, forgotten=lambda user: self.forget_list.contains(user))
        self._forget_every = poll_seconds if poll_seconds > 0 else 1.0
        self._forget_count = -1
        self.forget_list: ForgetList = store.forget_list()
        self.recent: RecentView | None = None
        if policy.recent_window_hours > 0:
            self.recent = RecentView(store, policy, forgotten=lambda user: self.forget_list.contains(user))
            try:
                self.recent.load(self._watermark(holder.current))    # before the first request
            except Exception:  # noqa: BLE001 - a store down at start: the view's thread catches up
                logger.exception("recent view: first load failed; its thread retries")
            self.recent.start()
        self._refresh_forgotten()
        self._stop = threading.Event()
        self._housekeeper = threading.Thread(target=self._housekeeping, daemon=True, name="guanxi-housekeeping")
        self._housekeeper.start()

    def close(self) -> None:
        """Stop the housekeeping and recent-view threads (before the store is closed: they read it).
        The store itself stays open; whoever opened it closes it."""
        self._stop.set()
        if self.recent is not None:
            self.recent.stop()

    def _housekeeping(self) -> None:
        """The forget-list poll and the impression prune, off every request's path."""
        while not self._stop.wait(self._forget_every):
            for job in (self._refresh_forgotten, self._maybe_prune):
                try:
                    job()
                except Exception:  # noqa: BLE001 - housekeeping must never die; it runs again next round
                    logger.exception("%s failed; retrying at the next round", job.__name__.strip("_"))

    def _refresh_forgotten(self) -> None:
        """Re-read the forget list when it changed and hand it to the served model."""
        count = self.store.forgotten_count()
        if count != self._forget_count:
            first = self._forget_count < 0
            self.forget_list = self.store.forget_list()
            self._forget_count = count
            logger.info("forget list: %d users", len(self.forget_list))
            if not first:
                # Slates logged here while `guanxi forget` ran: drop what is pending, then what
                # reached the log after its delete.
                self.impressions.flush()
                since = int(time.time() - 2 * self._forget_every - 60)
                self.store.drop_forgotten_impressions(self.forget_list, since)
            if self.recent is not None:
                self.recent.forget(self.forget_list)
        self._apply_forgotten()

    def _apply_forgotten(self) -> None:
        """The served model follows the forget list and reads the recent view (after a swap, too)."""
        served = self.holder.current
        rec = served.recommender
        if rec.forget_list is not self.forget_list:
            rec.forget(self.forget_list)
        if self.recent is not None and (rec.recent is None or rec.recent.view is not self.recent):
            rec.attach_recent(self.recent, self.policy)
            self.recent.want_floor(self._watermark(served))

    @staticmethod
    def _watermark(served: Served) -> int:
        """The event-log seq up to which ``served``'s history holds acknowledged feedback."""
        return int(served.recommender.bundle.meta.get("events_watermark_seq", 0) or 0)

    def _score_batch(self, user_ids: list[str]) -> list[tuple[Served, Scored]]:
        served = self.holder.current          # one model for the whole batch, even mid-swap
        return [(served, s) for s in served.recommender.score_many(user_ids)]

    async def recommend_async(self, user_id: str, k: int = 20, kinds: list[str] | None = None,
                              intent: str = "auto") -> str:
        """:meth:`recommend` with the store read without blocking the event loop (module doc) and
        scoring micro-batched across concurrent requests (when that saves work: not with the
        candidate table, where a user's scoring reads only their row).

        Raises:
            StoreUnavailable: the store failed or did not answer within ``store_timeout_s``.
        """
        self._apply_forgotten()
        now = time.time()
        served = self.holder.current
        forgotten = served.recommender.is_forgotten(user_id)
        reader = getattr(self.store, "user_state_async", None)
        pending = None if reader is None else asyncio.ensure_future(self._user_state_async(reader, user_id, now,
                                                                                            forgotten))
        try:
            if not served.recommender.batching_pays:
                scored = served.recommender.score_many([user_id])[0]
            else:
                if self._batcher is None:
                    self._batcher = MicroBatcher(self._score_batch)
                served, scored = await self._batcher.submit(user_id)
            state = self.user_state(user_id, now, forgotten) if pending is None else await pending
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
        return self.recommend(user_id, k, kinds, now=now, served=served, scored=scored, state=state, intent=intent)

    async def _user_state_async(self, reader, user_id: str, now: float, forgotten: bool
                                ) -> tuple[UserSettings, dict[str, int]]:
        """:meth:`user_state` through the store's asynchronous reader, within ``store_timeout_s``."""
        window = int(now - self.policy.frequency_window_hours * 3600)
        try:
            settings, committed = await asyncio.wait_for(reader(user_id, window), self.store_timeout_s)
        except asyncio.TimeoutError:
            raise StoreUnavailable(f"the event log did not answer within {self.store_timeout_s:g} s") from None
        if not self.policy.frequency_cap or forgotten:
            return settings, {}
        return settings, self.impressions.with_pending(user_id, committed)

    def user_state(self, user_id: str, now: float, forgotten: bool) -> tuple[UserSettings, dict[str, int]]:
        """The user's settings and impressions inside the frequency window (this worker's pending
        ones included), in one store call (blocking: the asynchronous path reads a remote store
        with :meth:`_user_state_async` instead)."""
        window = int(now - self.policy.frequency_window_hours * 3600)
        if not self.policy.frequency_cap or forgotten:
            return self.store.settings(user_id), {}
        settings, committed = self.store.user_state(user_id, window)
        return settings, self.impressions.with_pending(user_id, committed)

    def recommend(self, user_id: str, k: int = 20, kinds: list[str] | None = None,
                  now: float | None = None, served: Served | None = None, scored: Scored | None = None,
                  state: tuple[UserSettings, dict[str, int]] | None = None, intent: str = "auto") -> str:
        """The ``/recommend`` response body as JSON text (:mod:`guanxi.serving.body`); logs the returned
        slate as impressions (never for a forgotten user). ``state``: the user's settings and
        impressions when already read (:meth:`user_state`)."""
        if served is None:
            self._apply_forgotten()
        served = served or self.holder.current  # one model for the whole request, even mid-swap
        now = time.time() if now is None else now
        forgotten = served.recommender.is_forgotten(user_id)
        settings, shown = state if state is not None else self.user_state(user_id, now, forgotten)
        use = served.recommender.intent_for(user_id, intent, now)
        fallback, slate = served.recommender.recommend(
            user_id, k, self.policy, kinds=kinds, muted_ids=list(settings.mute),
            commercial_opt_out=settings.commercial_opt_out, impressions=shown, scored=scored, intent=use)
        ids = served.encoder.ids
        if not forgotten:
            self.impressions.log(user_id, [ids[s.item_idx] for s in slate], int(now), served.version)
        block = use.block(served.recommender.intent.filled(use, [s.item_idx for s in slate]))
        return served.encoder.encode(user_id, served.version, fallback, slate, block)

    def feedback(self, events: list[dict]) -> dict:
        """Store a validated batch durably; ``{"accepted": n, "duplicates": d}`` only after the commit."""
        result = self.store.append(events)
        return {"accepted": result.accepted, "duplicates": result.duplicates}

    def settings(self, user_id: str, commercial_opt_out: bool | None, mute: list[str],
                 unmute: list[str]) -> dict:
        return self.store.update_settings(user_id, commercial_opt_out, mute, unmute).to_json()

    def reload(self) -> dict:
        return self.holder.reload(force=True)

    def _maybe_prune(self, now: float | None = None) -> None:
        """Delete impressions past the retention window, at most every :data:`PRUNE_EVERY_S`."""
        now = time.time() if now is None else now
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        removed = self.store.prune_impressions(int(now - self.policy.impression_retention_days * 86400))
        if removed:
            logger.info("pruned %d impressions past the retention window", removed)
