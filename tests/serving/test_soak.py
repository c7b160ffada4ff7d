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
    assert result["bars"] == {"no_failed_request": True, "no_request_hangs": True, "503_only_during_the_outage": True,
                              "rss_growth_under_10pct": True, "every_acknowledged_event_stored": True,
                              "promotion_served": True}, result
    assert result["unavailable_503"] == 0                   # the store never went away


def test_a_postgresql_restart_mid_run_fails_no_request_and_loses_nothing(registry, bundle, tmp_path):
    """The soak on a PostgreSQL log restarted once: requests during the outage get 503 with
    Retry-After, none hangs, every acknowledged event is in the log afterwards."""
    from soak import run_soak

    from tests.postgres import PostgresCluster, find_bin_dir

    if find_bin_dir() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): set GUANXI_PG_BIN or install postgresql")
    cluster = PostgresCluster(find_bin_dir())           # its own: the restart cuts every session
    users = list(bundle.idmap.user_ids.astype(str)[:1500])
    items = list(bundle.idmap.item_ids.astype(str))
    try:
        result = run_soak(registry["tracking_uri"], registry["dir"], 30, 20, users, items, cluster.new_database(),
                          log=tmp_path / "server.log", restart=lambda: cluster.restart(3.0), restart_at=0.6)
    finally:
        cluster.stop()
        main(["promote", "1", "--tracking-uri", registry["tracking_uri"],
              "--events-db", str(registry["dir"] / "events.db")])
    print({k: result[k] for k in ("failed", "failures", "unavailable_503", "unavailable_outside_outage",
                                  "store_outage_seconds", "slowest_ms")})
    assert result["store_outage_seconds"] >= 3.0 and result["acknowledged_events"] > 0
    assert result["unavailable_503"] > 0                    # the outage was felt, and answered with 503
    bars = result["bars"]
    assert bars["no_failed_request"] and bars["no_request_hangs"] and bars["503_only_during_the_outage"], result
    assert bars["every_acknowledged_event_stored"] and bars["promotion_served"], result
