"""Intent: whether an interaction serves a person's social intent (connecting with their circles,
content, friends' shares) or their economic intent (buying, paying, following a business).

One table decides it for every item event, by event type x item kind x commercial flag
(``features/intent.yaml``, overridable with a YAML file of the same shape); pair events are all
social. The defaults, and why:

- ``pay`` is economic on any item: money changes hands for a good or a service.
- Merchants: every engagement (``view``, ``click``, ``follow``, ``pay``, ...) is economic: a
  merchant exists to sell.
- Commercial official accounts and their content (sponsored, brands): ``view``, ``click`` and
  ``follow`` are economic (seeking out a business); ``read``, ``like``, ``comment`` and ``share``
  are social (consuming and passing on content, whoever published it).
- Everything else on non-commercial accounts and content is social.
- Pair events (``message``, ``red_packet``, ``moment_like``, ``moment_comment``) are social. Red
  packets move money, but between relatives and friends, as a ritual of the relationship (festival
  and wedding gifts, a thank-you); no business is on either side, so they are not purchase intent.
- ``impression`` and ``hide`` are not interactions: they carry the intent of their item (as a
  ``view`` would) and never count towards anyone's intent mix.

An *item's* intent is economic when the item is commercial (merchants, sponsored accounts and
their content) and social otherwise: what the item offers, whoever engages with it.

Data without kinds or commercial flags (a plain split directory, LastFM, Ciao) loads as
non-commercial ``content``: every event is social by the table and no intent claim is made on
such sets; Yelp's businesses are merchants, so every Yelp event is economic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from guanxi.features.schema import ITEM_EVENT_TYPES, ITEM_KINDS, NOT_INTERACTIONS

INTENTS = ("social", "economic")
SOCIAL, ECONOMIC = 0, 1
# Item columns of the table: a kind, or a kind with its commercial flag.
COLUMNS = ("merchant", "official_account", "official_account_commercial", "content", "content_commercial")
DEFAULT_TABLE = Path(__file__).with_name("intent.yaml")


class IntentTable:
    """The intent of every (event type, item kind, commercial) triple.

    Args:
        rows: ``{event type: {column: "social" | "economic"}}`` (:data:`COLUMNS`).

    Raises:
        ValueError: an unknown event type, column or intent, or a missing cell, named.
    """

    def __init__(self, rows: dict[str, dict[str, str]], source: str = "intent table") -> None:
        self.source = source
        cube = np.zeros((len(ITEM_EVENT_TYPES), len(ITEM_KINDS), 2), np.int8)   # [type, kind, commercial]
        for kind_type in rows:
            if kind_type not in ITEM_EVENT_TYPES:
                raise ValueError(f"{source}: unknown event type {kind_type!r}; valid types: {list(ITEM_EVENT_TYPES)}")
        for t, name in enumerate(ITEM_EVENT_TYPES):
            row = rows.get(name)
            if row is None:
                raise ValueError(f"{source}: no row for event type {name!r}")
            for column in row:
                if column not in COLUMNS:
                    raise ValueError(f"{source}: {name}: unknown column {column!r}; valid columns: {list(COLUMNS)}")
            for column in COLUMNS:
                value = row.get(column)
                if value not in INTENTS:
                    raise ValueError(f"{source}: {name}.{column}: expected social or economic, got {value!r}")
                kind = column.removesuffix("_commercial")
                k = ITEM_KINDS.index(kind)
                code = INTENTS.index(value)
                if column.endswith("_commercial"):
                    cube[t, k, 1] = code
                elif kind == "merchant":
                    cube[t, k, :] = code          # merchants are commercial; one column says both
                else:
                    cube[t, k, 0] = code
        self.cube = cube
        self.rows = {name: dict(rows[name]) for name in ITEM_EVENT_TYPES}

    @classmethod
    def load(cls, path: str | Path | None = None) -> "IntentTable":
        """The packaged table, or the one at ``path`` (same shape, every cell given).

        Raises:
            ValueError: a missing file or a bad cell.
        """
        path = Path(path) if path else DEFAULT_TABLE
        if not path.is_file():
            raise ValueError(f"intent table {path}: no such file")
        rows = yaml.safe_load(path.read_text()) or {}
        if not isinstance(rows, dict):
            raise ValueError(f"intent table {path}: expected a mapping of event types")
        return cls(rows, str(path))

    def of_events(self, types: np.ndarray, kinds: np.ndarray, commercial: np.ndarray) -> np.ndarray:
        """``[E]`` intent codes (0 social, 1 economic) of events given as codes: event type
        (index into ``ITEM_EVENT_TYPES``), item kind (index into ``ITEM_KINDS``), commercial flag."""
        return self.cube[np.asarray(types, np.int64), np.asarray(kinds, np.int64),
                         np.asarray(commercial, bool).astype(np.int64)]

    def to_dict(self) -> dict[str, dict[str, str]]:
        return self.rows


def item_intent(commercial: np.ndarray) -> np.ndarray:
    """``[I]`` intent codes of items: economic when commercial (module doc)."""
    return np.asarray(commercial, bool).astype(np.int8)


def counts_toward_mix(types: np.ndarray) -> np.ndarray:
    """``[E]`` bool: events that count towards a person's intent mix (interactions only)."""
    skip = [ITEM_EVENT_TYPES.index(t) for t in (*NOT_INTERACTIONS, "impression")]
    return ~np.isin(np.asarray(types, np.int64), skip)
