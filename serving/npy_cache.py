"""One "read the cached array, or build and cache it" for every per-version serving cache.

Workers serving the same model version share one file: the first builds it and writes it
atomically (a temp file renamed into place, so no worker reads a half-written array); the rest
memory-map it, so the pages are shared through the page cache.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)


def cached_array(cache: Path | None, build: Callable[[], np.ndarray],
                 fits: Callable[[np.ndarray], bool], what: str) -> np.ndarray:
    """The array at ``cache`` (memory-mapped, as a plain view) when it is there and ``fits``;
    otherwise ``build()``, written to ``cache`` (when given) and read back memory-mapped.

    Args:
        cache: the ``.npy`` file, or None to build without caching.
        build: makes the array.
        fits: whether a cached array belongs to this version (shape, dtype, header).
        what: names the cache in the warning when a stale file is rebuilt.
    """
    if cache is not None and cache.is_file():
        found = np.asarray(np.load(cache, mmap_mode="r"))
        if fits(found):
            return found
        logger.warning("%s %s does not fit this version (shape %s), rebuilding", what, cache, found.shape)
    array = build()
    if cache is None:
        return array
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(cache)
    return np.asarray(np.load(cache, mmap_mode="r"))
