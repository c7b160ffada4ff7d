"""A retrain lock lost while held is noticed before anything is published."""
from __future__ import annotations

import pytest

from guanxi.app.retrain_lock import RetrainBusy, RetrainLock, RetrainLockLost


def test_a_lock_file_removed_from_under_its_holder_is_lost(tmp_path):
    path = tmp_path / "events.db.retrain.lock"
    with RetrainLock(path) as lock:
        lock.check()                                   # held: nothing to say
        with pytest.raises(RetrainBusy):
            RetrainLock(path).__enter__()
        path.unlink()                                  # someone cleaned the folder
        with RetrainLock(path):                        # ... and a second retrain got "the" lock
            with pytest.raises(RetrainLockLost, match="removed while this retrain held it"):
                lock.check()
