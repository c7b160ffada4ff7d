"""Who asked to be forgotten, kept as salted hashes: the event log never stores the id itself.

``guanxi forget USER_ID`` deletes the user's rows and records ``HMAC-SHA256(salt, user_id)``; the salt
is drawn once per event log and kept in it. Whoever holds the log can test a given id against the
list (serving, retraining and training must), but cannot read the ids back out of it.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

import numpy as np


def hash_user(salt: bytes, user_id: str) -> str:
    """The hex digest recorded for ``user_id``."""
    return hmac.new(salt, str(user_id).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class ForgetList:
    """The forgotten users of one event log.

    Args:
        salt: the log's salt.
        hashes: the recorded digests.
    """

    def __init__(self, salt: bytes, hashes: Iterable[str] = ()) -> None:
        self.salt = salt
        self.hashes = frozenset(hashes)

    def __len__(self) -> int:
        return len(self.hashes)

    def contains(self, user_id: str) -> bool:
        return bool(self.hashes) and hash_user(self.salt, user_id) in self.hashes

    def mask(self, user_ids: Iterable[str]) -> np.ndarray:
        """``[n]`` bool: which of ``user_ids`` are forgotten (each distinct id hashed once)."""
        ids = np.asarray(list(user_ids) if not isinstance(user_ids, np.ndarray) else user_ids, dtype=object)
        if not self.hashes or not len(ids):
            return np.zeros(len(ids), bool)
        uniq, inverse = np.unique(ids.astype(str), return_inverse=True)
        hit = np.fromiter((hash_user(self.salt, u) in self.hashes for u in uniq.tolist()), bool, len(uniq))
        return hit[inverse]
