"""Micro-batching of scoring inside one worker's event loop.

Scoring is a matrix-vector product bound by memory bandwidth (the whole item matrix is read for
each user). Requests that arrive together are scored with one matrix product instead: the first
request of a batch schedules a flush on the event loop's next turn, requests started before then
join it. A lone request waits for nothing but that one turn.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable


class MicroBatcher:
    """Collect keys submitted in the same event-loop turn and run ``fn(keys)`` once for all.

    Args:
        fn: ``list[key] -> list[result]`` (same length and order), run on the event loop.
        max_batch: the most keys per call.
    """

    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int = 64) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._scheduled = False
        self.batches = 0
        self.items = 0

    async def submit(self, key: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((key, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        self._scheduled = bool(self._queue)
        if self._queue:
            asyncio.get_running_loop().call_soon(self._flush)
        self.batches += 1
        self.items += len(batch)
        try:
            results = self.fn([key for key, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter gets the error, none hangs
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)
