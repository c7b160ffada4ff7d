"""The one JSON writer: strict JSON, written atomically (metrics, reports, summaries).

Strict: NaN and infinities (an empty breakdown group) become null, numpy scalars plain numbers,
so other people's scripts can read every file with any JSON parser. Atomic: a temp file renamed
into place, so a reader never sees half a file and a failed write leaves the old one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy scalars and arrays as Python values."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` (see :func:`json_safe`) to ``path``, creating its folder; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(json_safe(payload), indent=2, allow_nan=False))
    tmp.replace(out)
    return out
