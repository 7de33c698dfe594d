"""Real Chromium for the web page tests: Debian's chromium and chromedriver, driven by Selenium.

The page is the product people judge us by, and what breaks in it (a
WebSocket handshake Chromium refuses, a subprotocol not echoed, a reconnect
that never fires) only shows in a real browser, so these tests drive one.
Missing Chromium fails them with the install command: a skip would hide
that CI lost its browser.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clusters import start_cluster

from chatcluster.spawn import SpawnedCluster

# chatwire (the TCP test client) lives with the end-to-end tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless as root on a shared CI machine: no sandbox (root), no GPU, /tmp instead of a small /dev/shm,
# and none of the background traffic (updates, sync, QUIC probes) a test neither needs nor wants.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--disable-extensions", "--window-size=1200,900", "--lang=en-US",
)
INSTALL_HINT = "apt-get install chromium chromium-driver (.ci/run does this)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web page in a real Chromium (tests/browser)")


def require_chromium() -> None:
    """Fail, saying what to install, when Debian's Chromium or its driver is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"the browser tests need {' and '.join(missing)}: {INSTALL_HINT}", pytrace=False)


def new_driver(profile_dir: Path):
    """A headless Chromium with a fresh profile of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for failure reports
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browsers(tmp_path_factory) -> Iterator[Callable[[int], list]]:
    """browsers(n): n Chromium instances, started on first use and shared by the module's tests.

    Starting Chromium costs about a second of a busy 2-core machine; each test
    opens the page afresh (driver.get), which resets everything the page holds,
    so sharing the browsers shares no chat state.
    """
    require_chromium()
    drivers: list = []
    profiles = tmp_path_factory.mktemp("chromium-profiles")

    def get(count: int) -> list:
        while len(drivers) < count:
            drivers.append(new_driver(profiles / f"profile{len(drivers)}"))
        return drivers[:count]

    yield get
    for driver in drivers:
        driver.quit()
    shutil.rmtree(profiles, ignore_errors=True)


@pytest.fixture(scope="module")
def web_cluster(tmp_path_factory) -> Iterator[SpawnedCluster]:
    """One cluster for the module's tests that do not disturb it (each uses names and rooms of its own).

    The same start as tests/conftest.py's cluster_factory (whose fixtures are per test).
    """
    cluster = start_cluster(tmp_path_factory.mktemp("web-cluster"))
    yield cluster
    cluster.stop()
