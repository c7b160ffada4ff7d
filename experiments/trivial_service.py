"""The yardstick for the serving load test: a BentoML endpoint that does nothing but answer.

``bentoml serve trivial_service:Trivial`` from this folder (experiments/bench_serving.py does).
"""
from __future__ import annotations

import os

import bentoml


@bentoml.service(name="trivial", workers=int(os.environ.get("GUANXI_WORKERS", "1")),
                 logging={"access": {"enabled": False}})
class Trivial:
    def __init__(self) -> None:
        # TRIVIAL_SETTLE_GC=1: the garbage-collector settings guanxi's workers use, so that the load
        # test can compare against the framework alone with or without them.
        if os.environ.get("TRIVIAL_SETTLE_GC"):
            from guanxi.serving.gc_settings import settle_after_startup, thresholds_from_env

            settle_after_startup(thresholds_from_env())

    @bentoml.api(route="/recommend")
    async def recommend(self, user_id: str, k: int = 20) -> dict:
        return {"user_id": user_id, "model_version": "0", "fallback": None, "items": []}
