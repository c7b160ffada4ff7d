"""The ``/recommend`` response body as JSON text, written directly (the shape in docs/contracts.md).

An item's id, kind and commercial flag never change within a model version, so their JSON is
encoded once per version; a request only formats its scores, reasons and counts. This replaced
building a dict per item and ``json.dumps`` of the whole body (about a tenth of a request's CPU).
The shape is :class:`guanxi.serving.schemas.Recommendation`; ``json.loads`` of the text equals the dict
body item for item (tested).
"""
from __future__ import annotations

import json

import numpy as np

from guanxi.serving.policy import SlateItem


class SlateEncoder:
    """Encodes slates of one model version.

    Args:
        item_ids: ``[I]`` external item ids.
        kinds: ``[I]`` item kinds.
        commercial: ``[I]`` bool commercial flags (an item's intent: economic when commercial).
    """

    def __init__(self, item_ids: np.ndarray, kinds: np.ndarray, commercial: np.ndarray) -> None:
        self.ids: list[str] = [str(i) for i in item_ids.tolist()]     # item_idx -> external id
        self._head = [f'{{"item_id": {json.dumps(i)}, "kind": {json.dumps(str(k))}, "score": '
                      for i, k in zip(self.ids, kinds.tolist())]
        self._flag = [('true, "intent": "economic"' if c else 'false, "intent": "social"') for c in commercial.tolist()]

    def encode(self, user_id: str, model_version: str, fallback: str | None, slate: list[SlateItem],
               intent: dict | None = None) -> str:
        """The body: ``{"user_id", "model_version", "fallback", "intent", "items": [...]}``; scores
        rounded to 6 decimals; ``intent`` the request's intent block."""
        head, flag = self._head, self._flag
        items = ", ".join(
            f'{head[s.item_idx]}{round(s.score, 6)!r}, "commercial": {flag[s.item_idx]}, '
            f'"reason": {{"type": "{s.reason}", "contacts_engaged": {s.contacts_engaged}}}}}' for s in slate)
        block = json.dumps(intent or {"mix": None, "source": None, "used": "any", "filled": 0})
        return (f'{{"user_id": {json.dumps(user_id)}, "model_version": {json.dumps(model_version)}, '
                f'"fallback": {json.dumps(fallback)}, "intent": {block}, "items": [{items}]}}')
