"""Shared fixtures: a tiny planted world (generated once per session) and the real-data root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from guanxi.features.world import World, WorldConfig, generate_world
from guanxi.features.world_io import write_world

REPO = Path(__file__).resolve().parents[1]
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
