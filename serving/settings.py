"""Where the service finds its model, event log, policy and tokens: environment variables, read
once when a worker starts (``guanxi serve`` sets them from its flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from serving.gc_settings import DEFAULT_THRESHOLDS, thresholds_from_env
from serving.retrieval import RetrievalConfig

DEFAULT_MODEL_URI = "models:/guanxi@champion"


@dataclass(frozen=True)
class ServeSettings:
    """Args (environment variable, default):
        model_uri: ``GUANXI_MODEL_URI``, ``models:/guanxi@champion``.
        tracking_uri: ``MLFLOW_TRACKING_URI``, ``sqlite:///mlflow.db`` in the working directory.
        events_db: ``GUANXI_EVENTS_DB``, ``events.db`` in the working directory.
        policy: ``GUANXI_POLICY``, none (the packaged ``serving/policy.yaml``).
        poll_seconds: ``GUANXI_POLL_SECONDS``, 10 (0: never poll the alias).
        admin_token: ``GUANXI_ADMIN_TOKEN``; unset: ``/admin/reload`` answers 403.
        api_token: ``GUANXI_API_TOKEN``; set: every endpoint but health, readiness, metrics and
            OpenAPI needs it as a bearer token (:mod:`serving.guard`).
        max_body_bytes: ``GUANXI_MAX_BODY_BYTES``, 1048576: larger request bodies get 413.
        max_concurrency: ``GUANXI_MAX_CONCURRENCY``, 64: requests in flight per worker before 503.
        events_busy_ms: ``GUANXI_EVENTS_BUSY_MS``, 5000: how long a write waits for the event log's
            lock before the request gets 503 with ``Retry-After``.
        ann_min_items: ``GUANXI_ANN_MIN_ITEMS``, 250000: item kinds at least this large are retrieved
            through an ANN index (0: always exact).
        ann_nprobe: ``GUANXI_ANN_NPROBE``, 64: inverted lists scanned per query.
        table_max_scores: ``GUANXI_TABLE_MAX_SCORES``, 4000000000: a kind without an ANN index gets
            a precomputed candidate table (exact; :mod:`serving.candidate_table`) when users x its
            items is at most this, e.g. 20k users x 100k items (0: never).
        table_depth: ``GUANXI_TABLE_DEPTH``, 600: items per user and kind in the table.
        model_cache: ``GUANXI_MODEL_CACHE``: where workers share downloaded versions (default under
            the system temp dir).
        gc_thresholds: ``GUANXI_GC_THRESHOLDS``, ``5000,10,100``: the garbage collector's thresholds
            in each worker (:mod:`serving.gc_settings`).
    """

    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str | None = None
    events_db: str = "events.db"
    policy: str | None = None
    poll_seconds: float = 10.0
    admin_token: str | None = None
    api_token: str | None = None
    max_body_bytes: int = 1_048_576
    max_concurrency: int = 64
    events_busy_ms: int = 5_000
    ann_min_items: int = 250_000
    ann_nprobe: int = 64
    table_max_scores: int = 4_000_000_000
    table_depth: int = 600
    model_cache: str | None = None
    gc_thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS

    def retrieval(self) -> RetrievalConfig:
        """How the served model narrows large kinds (ANN index, candidate table)."""
        return RetrievalConfig(min_items=self.ann_min_items, nprobe=self.ann_nprobe,
                               table_max_scores=self.table_max_scores, table_depth=self.table_depth)

    @classmethod
    def from_env(cls) -> "ServeSettings":
        def number(name: str, default: str, kind: type):
            raw = os.environ.get(name, default)
            try:
                return kind(raw)
            except ValueError as exc:
                raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from exc

        poll = number("GUANXI_POLL_SECONDS", "10", float)
        return cls(model_uri=os.environ.get("GUANXI_MODEL_URI") or DEFAULT_MODEL_URI,
                   tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
                   events_db=os.environ.get("GUANXI_EVENTS_DB") or "events.db",
                   policy=os.environ.get("GUANXI_POLICY") or None, poll_seconds=poll,
                   admin_token=os.environ.get("GUANXI_ADMIN_TOKEN") or None,
                   api_token=os.environ.get("GUANXI_API_TOKEN") or None,
                   max_body_bytes=number("GUANXI_MAX_BODY_BYTES", "1048576", int),
                   max_concurrency=number("GUANXI_MAX_CONCURRENCY", "64", int),
                   events_busy_ms=number("GUANXI_EVENTS_BUSY_MS", "5000", int),
                   ann_min_items=number("GUANXI_ANN_MIN_ITEMS", "250000", int),
                   ann_nprobe=number("GUANXI_ANN_NPROBE", "64", int),
                   table_max_scores=number("GUANXI_TABLE_MAX_SCORES", "4000000000", int),
                   table_depth=number("GUANXI_TABLE_DEPTH", "600", int),
                   model_cache=os.environ.get("GUANXI_MODEL_CACHE") or None,
                   gc_thresholds=thresholds_from_env())
