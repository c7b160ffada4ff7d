"""A shippable Bento: ``guanxi build`` imports the champion into a BentoML model store and builds the
service around it; ``bentoml serve`` of the built Bento answers with that version and no registry."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from guanxi.serving.launch import free_port, start_server, stop_server, wait_ready
from tests.serving.http_post import outward_address, post_json

REPO = Path(__file__).resolve().parents[2]


def test_the_bentofile_pins_what_pyproject_pins():
    spec = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    name = lambda req: re.split(r"[\[<>=!~ ]", req, maxsplit=1)[0].lower()  # noqa: E731
    pinned = {name(r): r for r in project}
    for req in spec["python"]["packages"]:
        assert pinned.get(name(req)) == req, f"bentofile.yaml has {req!r}, pyproject.toml {pinned.get(name(req))!r}"
    assert not {"torch", "torch-geometric"} & {name(r) for r in spec["python"]["packages"]}


def _guanxi(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "guanxi.app.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_a_built_bento_serves_its_own_model_without_the_registry(registry, tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = _guanxi("build", "--tracking-uri", registry["tracking_uri"], env=env)
    bento, model = re.search(r"built Bento (\S+) with model (\S+)", out).groups()
    again = _guanxi("build", "--tracking-uri", registry["tracking_uri"], env=env)
    assert f"with model {model}" in again                      # the same version is imported once
    store = tmp_path / "bentoml"
    assert len(list((store / "models" / "guanxi").glob("*/model.yaml"))) == 1
    src = store / "bentos" / "guanxi" / bento.split(":")[1] / "src" / "guanxi"
    assert (src / "serving" / "service.py").is_file() and (src / "serving" / "policy.yaml").is_file()
    assert not (src / "training").exists() and not (src / "app").exists()
    manifest = yaml.safe_load((src.parents[1] / "bento.yaml").read_text())
    assert [m["tag"] for m in manifest["models"]] == [model]

    port = free_port()
    run_dir = tmp_path / "elsewhere"                            # no mlflow.db, no registry
    run_dir.mkdir()
    # Every interface, as `bentoml serve guanxi:TAG` binds by default, and no GUANXI_API_TOKEN: the
    # service itself answers this machine only.
    proc = start_server("0.0.0.0", port, {**env, "GUANXI_EVENTS_DB": str(run_dir / "events.db")},
                        log=tmp_path / "bento.log", service=bento, cwd=run_dir)
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        outward = outward_address()
        if outward is not None:
            event = {"events": [{"user_id": "u1", "item_id": "c1", "type": "pay"}]}
            status, body = post_json(port, "/feedback", event, host=outward)
            assert status == 403 and "GUANXI_API_TOKEN" in body["error"]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", method="POST",
                                     data=json.dumps({"user_id": "u1", "k": 5}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["model_version"] == "1" and len(body["items"]) == 5
    finally:
        stop_server(proc)
    assert not (run_dir / "mlflow.db").exists() and not (run_dir / "mlruns").exists()
