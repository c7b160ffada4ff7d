"""Where the service finds its model, event log, policy and tokens: environment variables with
the ``GUANXI_`` prefix (``MLFLOW_TRACKING_URI`` for the tracking store), read once when a worker
starts (``guanxi serve`` sets them from its flags). An empty variable counts as unset.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from guanxi.serving.gc_settings import DEFAULT_THRESHOLDS, parse_thresholds
from guanxi.serving.retrieval import RetrievalConfig

DEFAULT_MODEL_URI = "models:/guanxi@champion"


class ServeSettings(BaseSettings):
    """The service's settings. Args (environment variable, default):
        model_uri: ``GUANXI_MODEL_URI``, ``models:/guanxi@champion``.
        tracking_uri: ``MLFLOW_TRACKING_URI``, ``sqlite:///mlflow.db`` in the working directory.
        events_db: ``GUANXI_EVENTS_DB``, ``events.db`` in the working directory: a SQLite file or a
            ``postgresql://`` URL (:mod:`guanxi.serving.event_stores`).
        policy: ``GUANXI_POLICY``, none (the packaged ``serving/policy.yaml``).
        poll_seconds: ``GUANXI_POLL_SECONDS``, 10 (0: never poll the alias).
        admin_token: ``GUANXI_ADMIN_TOKEN``; unset: ``/admin/reload`` answers 403.
        api_token: ``GUANXI_API_TOKEN``; set: every endpoint but health, readiness, metrics and
            OpenAPI needs it as a bearer token (:mod:`guanxi.serving.guard`); unset: only clients on
            this machine (loopback) are answered.
        insecure: ``GUANXI_INSECURE``, false: true answers every client without a token (the
            explicit opt-out; ``guanxi serve --insecure`` sets it).
        max_body_bytes: ``GUANXI_MAX_BODY_BYTES``, 1048576: larger request bodies get 413.
        max_concurrency: ``GUANXI_MAX_CONCURRENCY``, 64: requests in flight per worker before 503.
        events_busy_ms: ``GUANXI_EVENTS_BUSY_MS``, 5000: how long a write waits for the event log's
            lock before the request gets 503 with ``Retry-After``; on PostgreSQL also the statement
            timeout of every statement the service runs.
        store_timeout_ms: ``GUANXI_STORE_TIMEOUT_MS``, 2000: how long ``/recommend`` waits for the
            user's settings and impressions before it answers 503 with ``Retry-After`` (the read
            runs off the event loop, so other requests and ``/livez`` are answered meanwhile).
        ann_min_items: ``GUANXI_ANN_MIN_ITEMS``, 250000: item kinds at least this large are retrieved
            through an ANN index (0: always exact).
        ann_nprobe: ``GUANXI_ANN_NPROBE``, 64: inverted lists scanned per query.
        table_max_scores: ``GUANXI_TABLE_MAX_SCORES``, 4000000000: a kind without an ANN index gets
            a precomputed candidate table (exact; :mod:`guanxi.serving.candidate_table`) when users x its
            items is at most this, e.g. 20k users x 100k items (0: never).
        table_depth: ``GUANXI_TABLE_DEPTH``, 600: items per user and kind in the table.
        model_cache: ``GUANXI_MODEL_CACHE``: where workers share downloaded versions (default the
            account's private cache, ``~/.cache/guanxi/models``; it must belong to this account and be
            writable by no other: :mod:`guanxi.serving.model_cache`).
        gc_thresholds: ``GUANXI_GC_THRESHOLDS``, ``5000,10,100``: the garbage collector's thresholds
            in each worker (:mod:`guanxi.serving.gc_settings`).
    """

    model_config = SettingsConfigDict(env_prefix="GUANXI_", env_ignore_empty=True, frozen=True, extra="ignore",
                                      populate_by_name=True)

    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "tracking_uri"))
    events_db: str = "events.db"
    policy: str | None = None
    poll_seconds: float = 10.0
    admin_token: str | None = None
    api_token: str | None = None
    insecure: bool = False
    max_body_bytes: int = 1_048_576
    max_concurrency: int = 64
    events_busy_ms: int = 5_000
    store_timeout_ms: int = 2_000
    ann_min_items: int = 250_000
    ann_nprobe: int = 64
    table_max_scores: int = 4_000_000_000
    table_depth: int = 600
    model_cache: str | None = None
    gc_thresholds: Annotated[tuple[int, int, int], NoDecode] = DEFAULT_THRESHOLDS

    @field_validator("events_db")
    @classmethod
    def _events_db(cls, raw: str) -> str:
        from guanxi.serving.event_stores import parse_event_log

        parse_event_log(raw)          # an unusable value fails here, before a worker opens anything
        return raw

    @field_validator("gc_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, raw: Any) -> Any:
        return parse_thresholds(raw) if isinstance(raw, str) else raw

    def retrieval(self) -> RetrievalConfig:
        """How the served model narrows large kinds (ANN index, candidate table)."""
        return RetrievalConfig(min_items=self.ann_min_items, nprobe=self.ann_nprobe,
                               table_max_scores=self.table_max_scores, table_depth=self.table_depth)

    @classmethod
    def from_env(cls) -> "ServeSettings":
        """The settings in the environment.

        Raises:
            ValueError: a variable's value does not parse (the message names the variable and value).
        """
        try:
            return cls()
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err.get("loc") else "?"
            name = "MLFLOW_TRACKING_URI" if field == "tracking_uri" else f"GUANXI_{field.upper()}"
            message = str(err["msg"]).removeprefix("Value error, ")
            if message.startswith(name):          # a check that already names the variable and value
                raise ValueError(message) from None
            raise ValueError(f"{name}: {message}, got {err.get('input')!r}") from None
