"""The garbage collector in a serving worker: what start-up loaded is frozen, and full collections
are made rare.

Why. Under load, BentoML's traffic-timeout middleware schedules one timer per request
(``loop.call_later(timeout, ...)``, 60 s, never cancelled), and the timer keeps the request's
context (its OpenTelemetry span, closures, scope) alive until it fires. At ~300 requests/s a
worker thus holds ~200k young container objects at any time; each full collection walks them
all, 100–230 ms, every 2–3 s, and at one client that drove the p99 of ``/recommend`` from ~6 ms
to 40–230 ms. Freezing start-up objects (``gc.freeze``) removes the model and libraries from those
walks; raising the thresholds makes full collections ~50x rarer (``(5000, 10, 100)``: a young
collection per 5,000 net allocations instead of 700, a full one per 100 middle ones instead of 10).
Reference counting still frees everything at once; only cyclic garbage waits longer.
"""
from __future__ import annotations

import gc
import os

DEFAULT_THRESHOLDS = (5000, 10, 100)


def thresholds_from_env(env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """``GUANXI_GC_THRESHOLDS`` as three comma-separated integers (default ``5000,10,100``).

    Raises:
        ValueError: not three non-negative integers (the message quotes the value).
    """
    return parse_thresholds((os.environ if env is None else env).get("GUANXI_GC_THRESHOLDS", ""))


def parse_thresholds(raw: str) -> tuple[int, int, int]:
    """Three comma-separated non-negative integers (blank: the default), else a ``ValueError``
    quoting ``raw``."""
    if not raw.strip():
        return DEFAULT_THRESHOLDS
    try:
        values = tuple(int(x) for x in raw.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0:
        raise ValueError(f"GUANXI_GC_THRESHOLDS must be three non-negative integers like '5000,10,100', got {raw!r}")
    return values  # type: ignore[return-value]


def settle_after_startup(thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS) -> None:
    """Collect once, freeze what is left (it lives as long as the worker) and set the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
