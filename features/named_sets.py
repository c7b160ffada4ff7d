"""The names ``--data`` and ``guanxi split`` accept for the public sets (no heavy imports: the
CLI reads them to build its parser).

- ``RAW_SETS``: the raw sets of ``../shared/data`` (``guanxi.features.load_raw``).
- ``DENSE_SETS``: dense cores cut from a raw set (``guanxi.features.dense_core``): each keeps,
  repeatedly, the items engaged by at least ``min_per_item`` users and the users with at least
  ``min_per_user`` of them, before the protocol's per-user split.
"""
from __future__ import annotations

from dataclasses import dataclass

RAW_SETS = ("lastfm", "lastfm-sociallgn", "ciao", "yelp")


@dataclass(frozen=True)
class DenseSpec:
    """One named dense set: the raw set it is cut from and its core sizes."""

    source: str
    min_per_user: int
    min_per_item: int


DENSE_SETS: dict[str, DenseSpec] = {
    "yelp-dense": DenseSpec("yelp", 10, 10),      # dense items: 26.3 training pairs a user, 29.4 an item
    "yelp-heavy": DenseSpec("yelp", 30, 10),      # heavy users: 52.9 a user, 23.1 an item
    "ciao-heavy": DenseSpec("ciao", 20, 5),       # heavy users: 39.5 a user, 9.9 an item
}

NAMED_SETS = RAW_SETS + tuple(DENSE_SETS)
