"""Shared fixtures: a tiny planted world (generated once per session) and the real-data root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from guanxi.features.world import World, WorldConfig, generate_world
from guanxi.features.world_io import write_world

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Keep the suite out of the account's own caches: serving's model cache and index
    (``XDG_CACHE_HOME``) and the BentoML store (``BENTOML_HOME``) live in a temp folder of the run,
    inherited by every server the tests start (a purge test deletes what it finds there)."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="guanxi-tests-"))
    os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")
    os.environ["BENTOML_HOME"] = str(scratch / "bentoml")
SHARED_DATA = Path(os.environ.get("GUANXI_DATA", REPO.parent / "shared" / "data"))


def shared_set(relative: str) -> Path:
    """Path of a raw set in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.is_dir():
        pytest.skip(f"real dataset not present: {path} (set GUANXI_DATA to its folder)")
    return path


@pytest.fixture(scope="session")
def tiny_world() -> World:
    """A 2,000-user world: big enough for planted structure to show, small enough to be quick."""
    return generate_world(WorldConfig(users=2_000, seed=7))


@pytest.fixture(scope="session")
def tiny_world_dir(tiny_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    write_world(tiny_world, out)
    return out


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL cluster for the session (skips where no PostgreSQL binary exists)."""
    from tests.postgres import PostgresCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): set GUANXI_PG_BIN or install postgresql")
    cluster = PostgresCluster(bin_dir)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def events_target(request, tmp_path) -> str:
    """A fresh, empty event log of each kind: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "events.db")
    return request.getfixturevalue("pg_cluster").new_database()
