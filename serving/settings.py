"""Where the service finds its model, event log, policy and tokens: environment variables, read
once when a worker starts (``guanxi serve`` sets them from its flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass

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
        api_token: ``GUANXI_API_TOKEN``; set: ``/feedback`` and ``/settings`` need it as a bearer token.
    """

    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str | None = None
    events_db: str = "events.db"
    policy: str | None = None
    poll_seconds: float = 10.0
    admin_token: str | None = None
    api_token: str | None = None

    @classmethod
    def from_env(cls) -> "ServeSettings":
        raw_poll = os.environ.get("GUANXI_POLL_SECONDS", "10")
        try:
            poll = float(raw_poll)
        except ValueError as exc:
            raise ValueError(f"GUANXI_POLL_SECONDS must be a number of seconds, got {raw_poll!r}") from exc
        return cls(model_uri=os.environ.get("GUANXI_MODEL_URI") or DEFAULT_MODEL_URI,
                   tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
                   events_db=os.environ.get("GUANXI_EVENTS_DB") or "events.db",
                   policy=os.environ.get("GUANXI_POLICY") or None, poll_seconds=poll,
                   admin_token=os.environ.get("GUANXI_ADMIN_TOKEN") or None,
                   api_token=os.environ.get("GUANXI_API_TOKEN") or None)
