"""A slow or failing event log never stalls a worker: ``/recommend`` reads a remote store through its
asynchronous reader within a timeout (503 after it, every other coroutine answered meanwhile), a
failed impression prune never turns a computed slate into an error, and PostgreSQL statements are
bounded by a statement timeout on connections with TCP keepalives; a PostgreSQL server that stops
answering (its processes paused) costs a request 503 within the timeout, never the worker."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from guanxi.serving.api import RecommendationAPI
from guanxi.serving.champion import ChampionHolder
from guanxi.serving.event_stores import open_event_store
from guanxi.serving.events import StoreUnavailable
from guanxi.serving.policy import PolicyConfig


class SlowStore:
    """The real store behind a remote store's asynchronous reader that takes ``delay`` seconds to
    answer, and whose prune fails."""

    def __init__(self, store, delay: float) -> None:
        self.store, self.delay = store, delay

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def user_state_async(self, user_id, since_ts):
        await asyncio.sleep(self.delay)
        return self.store.user_state(user_id, since_ts)

    def prune_impressions(self, before_ts):
        raise StoreUnavailable("disk I/O error")


@pytest.fixture
def api_for(registry, tmp_path):
    made: list[RecommendationAPI] = []

    def make(delay: float, timeout: float) -> RecommendationAPI:
        holder = ChampionHolder(str(registry["dir"] / "bundle-16"), poll_seconds=0)
        store = SlowStore(open_event_store(tmp_path / "events.db"), delay)
        made.append(RecommendationAPI(holder, store, PolicyConfig(), poll_seconds=0, store_timeout_s=timeout))
        return made[-1]
    yield make
    for api in made:                    # its threads would read the store past the test
        api.close()


def beside_the_loop(request, ticks: int) -> tuple[object, float, list[float]]:
    """Run the coroutine ``request`` beside a ticker (what /livez needs: the loop turning every
    20 ms); returns its outcome, the seconds it took, and each tick's wait."""
    lags: list[float] = []

    async def liveness() -> None:
        for _ in range(ticks):
            start = time.perf_counter()
            await asyncio.sleep(0.02)
            lags.append(time.perf_counter() - start)

    async def both():
        start = time.perf_counter()
        got = await asyncio.gather(request, liveness(), return_exceptions=True)
        return got[0], time.perf_counter() - start

    outcome, seconds = asyncio.run(both())
    return outcome, seconds, lags


def test_a_slow_store_is_a_503_within_the_timeout_and_the_loop_keeps_answering(api_for):
    api = api_for(delay=1.5, timeout=0.3)
    outcome, seconds, lags = beside_the_loop(api.recommend_async("u1", 5), 25)
    assert isinstance(outcome, StoreUnavailable) and "did not answer within 0.3 s" in str(outcome)
    assert max(lags) < 0.25, max(lags)              # never blocked for the store's 1.5 s
    assert seconds < 1.2


def test_a_store_in_time_answers_normally(api_for):
    api = api_for(delay=0.05, timeout=2.0)
    body = json.loads(asyncio.run(api.recommend_async("u1", 5)))
    assert body["user_id"] == "u1" and len(body["items"]) == 5


def test_a_failed_prune_never_fails_a_request(api_for):
    api = api_for(delay=0.0, timeout=2.0)
    api._last_prune = 0.0                           # a prune is due
    body = json.loads(api.recommend("u1", 5))
    assert len(body["items"]) == 5
    with pytest.raises(StoreUnavailable):           # housekeeping runs it (and logs its failure)
        api._maybe_prune()


@pytest.mark.slow
def test_postgres_statements_are_bounded_and_connections_keep_alive(pg_cluster):
    url = pg_cluster.new_database()
    store = open_event_store(url, busy_timeout_ms=1000, statement_timeout_ms=300)
    try:
        with store._pool.connection() as conn:
            params = conn.info.get_parameters()
            dsn = conn.info.dsn
            assert "keepalives=1" in dsn and "tcp_user_timeout=10000" in dsn
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "300ms"
            assert params is not None
        start = time.perf_counter()
        with pytest.raises(StoreUnavailable), store._read() as conn:
            conn.execute("SELECT pg_sleep(3)")
        assert time.perf_counter() - start < 2.0
        assert store.settings("u1").commercial_opt_out is False       # the pool still serves
    finally:
        store.close()


@pytest.mark.slow
def test_a_paused_postgres_is_a_503_in_time_and_the_loop_keeps_answering(registry, pg_cluster):
    import psutil

    store = open_event_store(pg_cluster.new_database(), busy_timeout_ms=1000, statement_timeout_ms=1000)
    holder = ChampionHolder(str(registry["dir"] / "bundle-16"), poll_seconds=0)
    api = RecommendationAPI(holder, store, PolicyConfig(recent_window_hours=0), poll_seconds=0, store_timeout_s=0.5)
    assert json.loads(asyncio.run(api.recommend_async("u1", 5)))["items"]
    postmaster = next(p for p in psutil.process_iter(["cmdline"])
                      if f"-p {pg_cluster.port}" in " ".join(p.info["cmdline"] or []))
    servers = [postmaster, *postmaster.children(recursive=True)]         # this cluster, every backend
    for proc in servers:
        proc.suspend()
    try:
        outcome, seconds, lags = beside_the_loop(api.recommend_async("u2", 5), 40)
    finally:
        for proc in servers:
            proc.resume()
    assert isinstance(outcome, StoreUnavailable) and seconds < 2.0
    assert max(lags) < 0.25, max(lags)
    api.close()
    store.close()


def test_closing_the_api_stops_every_thread_that_reads_the_store(api_for):
    api = api_for(delay=0.0, timeout=2.0)
    threads = [api._housekeeper] + ([api.recent._thread] if api.recent is not None else [])
    assert all(t.is_alive() for t in threads)
    api.close()
    for t in threads:
        t.join(timeout=5.0)
    assert not any(t.is_alive() for t in threads)
