"""The soak test's 30-second version (experiments/soak.py runs it for 5 minutes): a real `guanxi
serve` under a fixed rate of mixed requests with a promotion in the middle."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from guanxi.app.cli import main

pytestmark = pytest.mark.slow
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))


def test_thirty_seconds_of_mixed_load_with_a_promotion(registry, bundle, tmp_path):
    from soak import run_soak

    users = list(bundle.idmap.user_ids.astype(str)[:1500]) + ["someone-new"]
    items = list(bundle.idmap.item_ids.astype(str))
    try:
        result = run_soak(registry["tracking_uri"], registry["dir"], 30, 20, users, items, tmp_path / "events.db",
                          log=tmp_path / "server.log")
    finally:
        main(["promote", "1", "--tracking-uri", registry["tracking_uri"],
                     "--events-db", str(registry["dir"] / "events.db")])
    print({k: result[k] for k in ("versions_served", "version_after_promotion", "promote_command_seconds",
                                  "failed", "rss_growth")})                # shown when a bar fails
    assert result["requests"] >= 500 and result["acknowledged_events"] > 0
    assert result["bars"] == {"no_failed_request": True, "rss_growth_under_10pct": True,
                              "every_acknowledged_event_stored": True, "promotion_served": True}, result
