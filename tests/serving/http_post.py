"""One JSON POST to a real server on loopback, as the tests against `bentoml serve` processes send it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


def post_json(port: int, path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    """POST ``body`` to ``http://127.0.0.1:port/path``; returns the status and the decoded answer
    (4xx and 5xx included)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
