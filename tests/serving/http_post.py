"""One JSON POST to a real server on loopback, as the tests against `bentoml serve` processes send it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


def post_json(port: int, path: str, body: dict, token: str | None = None,
              host: str = "127.0.0.1") -> tuple[int, dict]:
    """POST ``body`` to ``http://host:port/path``; returns the status and the decoded answer
    (4xx and 5xx included)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=json.dumps(body).encode(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def outward_address() -> str | None:
    """This machine's address on its default route (not loopback), or None when it has none."""
    import socket

    for target in ("198.51.100.1", "10.255.255.254"):       # documentation / private: never contacted
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((target, 9))             # no packet is sent: this only picks the route
                address = s.getsockname()[0]
            except OSError:
                continue
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None
