"""IdMap: external string ids <-> contiguous model indices, saved with every model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


class IdCounts:
    """``num_users`` and ``num_items`` of anything that holds ``user_ids`` and ``item_ids`` arrays."""

    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


class IdMap(IdCounts):
    """Maps user and item ids (strings) to ``user_idx``/``item_idx`` (contiguous ints) and back.

    Args:
        user_ids: ``[num_users]`` ids in index order.
        item_ids: ``[num_items]`` ids in index order.
    """

    def __init__(self, user_ids: np.ndarray | list[str], item_ids: np.ndarray | list[str]) -> None:
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.item_ids = np.asarray(item_ids, dtype=object)
        self._users = pd.Index(self.user_ids.astype(str))
        self._items = pd.Index(self.item_ids.astype(str))
        for name, idx in (("user", self._users), ("item", self._items)):
            if not idx.is_unique:
                dup = idx[idx.duplicated()][0]
                raise ValueError(f"duplicate {name} id {dup!r} in IdMap")

    def user_index(self, ids: pd.Series | np.ndarray | list[str]) -> np.ndarray:
        """``[n]`` user_idx for each id; -1 where the id is unknown."""
        return self._users.get_indexer(pd.Index(np.asarray(ids, dtype=object).astype(str)))

    def item_index(self, ids: pd.Series | np.ndarray | list[str]) -> np.ndarray:
        """``[n]`` item_idx for each id; -1 where the id is unknown."""
        return self._items.get_indexer(pd.Index(np.asarray(ids, dtype=object).astype(str)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"users": self.user_ids.astype(str).tolist(),
                                          "items": self.item_ids.astype(str).tolist()}))

    @classmethod
    def load(cls, path: str | Path) -> "IdMap":
        data = json.loads(Path(path).read_text())
        return cls(data["users"], data["items"])
