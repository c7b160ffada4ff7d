"""docs/model.md's training-config table states the packaged defaults (default.yaml), no other."""
from __future__ import annotations

import re
from pathlib import Path

from guanxi.training.config import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"


def _table() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| ((?:`\w+`(?:, )?)+) \| ([^|]*) \|", line)
        if not m:
            continue
        keys = re.findall(r"`(\w+)`", m[1])
        values = [v.strip() for v in m[2].split(",")] if len(keys) > 1 else [m[2].strip()]
        values = values if len(values) == len(keys) else values * len(keys)
        rows.update(zip(keys, values))
    return rows


def _same(doc: str, value) -> bool:
    if isinstance(value, bool):
        return doc == str(value).lower()
    if isinstance(value, (int, float)):
        return float(doc) == float(value)
    return doc.strip('"') == value


def test_every_key_is_documented_with_its_default():
    config, table = load_config(), _table()
    missing = [k for k in config.to_dict() if k not in table]
    assert not missing, f"docs/model.md lacks {missing}"
    wrong = {k: (table[k], v) for k, v in config.to_dict().items() if not _same(table[k], v)}
    assert not wrong, f"docs/model.md states other defaults than default.yaml: {wrong}"
