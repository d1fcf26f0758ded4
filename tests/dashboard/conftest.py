"""A real headless Chromium (Debian's `chromium` and `chromium-driver`) against one
`memlab serve` with authentication on, shared by the module's tests.

Without a browser the tests are skipped with a message, unless MEMLAB_REQUIRE_BROWSER=1
(as in .ci/run, which installs it), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from store.db import make_engine, make_session_factory
from store.identity import create_user
from tests.e2e.conftest import (
    REPO_ROOT,
    dump_logs,
    environment_in,
    free_port,
    python_command,
    running,
    wait_until_ready,
)

SCREENSHOTS = REPO_ROOT / "docs" / "img"
WINDOW = (1400, 1000)


def browser_binaries() -> tuple[str, str]:
    """Chromium and its driver, or a skip (a failure under MEMLAB_REQUIRE_BROWSER=1)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = (
        "no headless browser here: `apt-get install chromium chromium-driver` to run the "
        "dashboard's browser tests (.ci/run does)"
    )
    if os.environ.get("MEMLAB_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Dashboard:
    url: str
    keys: dict[str, str]  # user name → API key
    folder: Path

    def client(self, user: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[user]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """`memlab serve` (SQLite, its own worker) with MEMLAB_AUTH=on on loopback, and two
    users, ada and bob, each with a key and a personal project."""
    browser_binaries()
    folder = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    env = {
        **environment_in(folder),
        "MEMLAB_AUTH": "on",
        "MEMLAB_METRICS_FLUSH_INTERVAL_S": "0.3",
    }
    command = python_command("-m", "client.cli", "serve", "--port", str(port))
    with running(command, env, folder / "serve.log") as serve:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, serve)
            sessions = make_session_factory(
                make_engine(f"sqlite:///{folder / 'data' / 'memlab.db'}")
            )
            keys = {}
            with sessions.begin() as session:
                for name in ("ada", "bob"):
                    _, issued = create_user(session, name)
                    keys[name] = issued.key
            yield Dashboard(url, keys, folder)
        except BaseException:
            print(dump_logs(folder))
            raise


@pytest.fixture(scope="module")
def browser(dashboard: Dashboard) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_binaries()
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        # Offline, as on a lab network: a page that fetched anything from another host
        # (a CDN) would log an error, which the tests fail on.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser: Any, tmp_path: Path) -> Any:
    """screenshot(name): the page as docs/img/NAME.png under MEMLAB_UPDATE_SCREENSHOTS=1,
    else under the test's temp folder."""

    def take(name: str) -> Path:
        folder = SCREENSHOTS if os.environ.get("MEMLAB_UPDATE_SCREENSHOTS") == "1" else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        browser.save_screenshot(str(path))
        return path

    return take
