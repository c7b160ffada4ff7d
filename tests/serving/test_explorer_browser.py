"""The explorer in a real browser: headless Chromium from the system's packages, driven by
Playwright, against a real `bentoml serve`: load the page, enter a user, see k slate rows and the
rings drawn, mute an item through /settings and see it held back as muted, no console error. The
test saves a screenshot (``$GUANXI_SCREENSHOT_DIR/explorer.png`` when set: docs/serving.md's)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from guanxi.serving.launch import free_port, server_env, start_server, stop_server, wait_ready
from tests.serving.http_post import post_json

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no system Chromium (apt-get install chromium; `make test` installs it where it can)")
    sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def test_the_explorer_page_in_a_real_browser(browser, registry, tmp_path):
    port = free_port()
    env = server_env(tracking_uri=registry["tracking_uri"], events_db=str(tmp_path / "events.db"), poll_seconds=0)
    for var in ("GUANXI_API_TOKEN", "GUANXI_ADMIN_TOKEN", "GUANXI_INSECURE"):
        env.pop(var, None)                     # no token at all: the explorer answers this machine only
    proc = start_server("127.0.0.1", port, env, log=tmp_path / "server.log")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        wait_ready(proc, "127.0.0.1", port, timeout=180)
        page.goto(f"http://127.0.0.1:{port}/explore")
        page.fill("#user", "u3")
        page.fill("#k", "8")
        page.click("#show")
        page.wait_for_selector("#slate tbody tr")
        assert page.locator("#slate tbody tr").count() == 8
        assert page.locator("#rings circle.ring").count() == 3 and page.locator("#rings circle.self").count() == 1
        assert page.locator("#rings g.contact").count() > 0
        assert "model version 1" in page.inner_text("#version")
        first = page.locator("#slate tbody tr").first.locator("td").nth(1).inner_text()
        assert post_json(port, "/settings", {"user_id": "u3", "mute": [first]})[0] == 200
        page.click("#show")
        page.wait_for_function(f"document.querySelector('#slate tbody').innerText.indexOf('{first}') < 0")
        held = page.locator("#held tbody tr", has_text=first)
        assert held.count() == 1 and "muted" in held.inner_text()
        assert "muted: " in page.inner_text("#held-counts")
        shot = tmp_path / "explorer.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("GUANXI_SCREENSHOT_DIR"):
            shutil.copy(shot, Path(os.environ["GUANXI_SCREENSHOT_DIR"]) / "explorer.png")
    finally:
        page.close()
        stop_server(proc)
    assert not errors, errors
