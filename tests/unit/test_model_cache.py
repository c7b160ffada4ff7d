"""The serving model cache is private to the account: a root another account owns (a planted
folder at a predictable path) or others may write is refused; the default root is made private;
one registry spelled two ways is one cache folder."""
from __future__ import annotations

import os
import stat

import pytest

from guanxi.serving import model_cache


def test_a_root_owned_by_another_account_is_refused(tmp_path):
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    other = 65534 if os.geteuid() != 65534 else 0
    try:
        os.chown(planted, other, other)
    except PermissionError:
        pytest.skip("cannot give a folder to another account without root")
    with pytest.raises(ValueError, match="belongs to uid"):
        model_cache.cache_dir("sqlite:///m.db", planted)


def test_a_chosen_root_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ValueError, match="writable by other accounts"):
        model_cache.cache_dir(None, shared)


def test_the_default_root_is_made_private_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = model_cache.default_root()
    root.chmod(0o755)
    folder = model_cache.cache_dir("sqlite:///m.db")
    assert folder.parent == root and stat.S_IMODE(root.stat().st_mode) == 0o700
    chosen = tmp_path / "mine"
    model_cache.cache_dir(None, chosen)
    assert {p.resolve() for p in model_cache.known_roots()} >= {root.resolve(), chosen.resolve()}


def test_one_registry_spelled_two_ways_is_one_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model_cache.registry_key("sqlite:///mlflow.db") == model_cache.registry_key(
        f"sqlite:///{tmp_path}/./mlflow.db")
    assert model_cache.registry_key("sqlite:///mlflow.db") != model_cache.registry_key("sqlite:///other.db")
