"""Each page in headless Chromium: the real server, the real browser, a PNG per page, and the
Security page again on a run with monitor alerts and on one whose OTA campaigns paused.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``); without them the test is skipped and says so. Streamlit draws after its
websocket connects, so the test waits for the page's own elements (its title, its charts
drawn, Streamlit no longer running the script) rather than sleeping.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from twin.commands.dashboard import streamlit_command

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# url path, page title, charts the page draws on the small baseline run
PAGES = [
    ("", "Fleet", 5),
    ("patient", "Patient", 3),
    ("security", "Security", 1),
    ("scenarios", "Scenarios", 0),
    ("compare", "Compare runs", 2),
    ("root-of-trust", "Root of trust", 0),
]
# Security again on runs that have its newer panels: (fixture, screenshot name, charts)
SECURITY_RUNS = [("monitored", "security-monitor", 2), ("faulty_ota", "security-ota", 2)]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1800")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium is not installed: apt-get install -y chromium "
                              "chromium-driver (CI installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(baseline: Path, tmp_path: Path) -> Iterator[str]:
    """The dashboard on a free port (as ``twin dashboard`` starts it), opened on the run."""
    port = _free_port()
    log = (tmp_path / "streamlit.log").open("wb")
    process = subprocess.Popen(streamlit_command(baseline, port), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "streamlit.log").read_text()) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def browser(tmp_path: Path):
    """Headless Chromium through chromedriver, with its own fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _rendered(title: str, charts: int):
    from selenium.webdriver.common.by import By

    def ready(driver) -> bool:
        heads = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1")]
        if not any(h.strip().startswith(title) for h in heads):
            return False
        if driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
            return False  # the script is still running
        drawn = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
        return len(drawn) >= charts
    return ready


def _screenshot(browser, url: str, title: str, charts: int, png: Path) -> float:
    """Open ``url``, wait until the page has drawn, save a full-page PNG; seconds to draw."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.perf_counter()
    browser.get(url)
    WebDriverWait(browser, 60, poll_frequency=0.1).until(_rendered(title, charts))
    took = time.perf_counter() - start
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    # Streamlit scrolls inside its main block, not the body: size the window to that.
    height = browser.execute_script(
        "const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
        "return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight);")
    browser.set_window_size(1400, max(900, min(int(height) + 250, 6000)))
    WebDriverWait(browser, 30, poll_frequency=0.1).until(_rendered(title, charts))
    assert browser.save_screenshot(str(png)) and png.stat().st_size > 10_000
    browser.set_window_size(1400, 1800)
    return took


def test_every_page_renders_in_chromium_and_is_screenshotted(server: str, browser,
                                                             tmp_path: Path,
                                                             request: pytest.FixtureRequest):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    timings = {}
    for path, title, charts in PAGES:
        png = shots / f"{title.lower().replace(' ', '-')}.png"
        timings[title] = _screenshot(browser, f"{server}/{path}", title, charts, png)
    for fixture, name, charts in SECURITY_RUNS:  # ?run= opens another run in a new session
        run = request.getfixturevalue(fixture)
        timings[name] = _screenshot(browser, f"{server}/security?run={quote(str(run))}",
                                    "Security", charts, shots / f"{name}.png")
    print(f"\nscreenshots in {shots}; seconds to render: "
          + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
