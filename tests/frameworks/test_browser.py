"""A real headless Chromium: log in on instance A (Flask), see the session on B (Starlette).

Debian's ``chromium`` and ``chromium-driver`` driven by Selenium; Selenium Manager
is never used (it would try to download a browser). Skips with the reason when
either is missing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import tablesessions
from examples.demo.run import Instance, StoreSettings, run_instances
from tablesessions.testing import AzuriteServer

from .helpers import COOKIE_RE

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: The flags that make Debian's Chromium run headless in a container without
#: reaching the network (see AZURE-FACTS.md, "Browser tests").
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"no browser: {', '.join(missing)} missing "
                    "(apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def instances(azurite: AzuriteServer,
              storage_names: tuple[str, str]) -> Iterator[tuple[Instance, Instance]]:
    table, container = storage_names
    settings = StoreSettings(azurite.connection_string, table, container, "browser", 300.0)
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=table, container_name=container) as store:
        store.create_storage()
    with run_instances(settings, secrets.token_urlsafe(32)) as pair:
        yield pair


def text(driver: WebDriver, element_id: str) -> str | None:
    # One script call, not find_element + .text: between those two round trips a
    # navigation can replace the node, and Chromium then answers "Node with given
    # id does not belong to the document" (a 500, not a stale-element error).
    shown = driver.execute_script(
        "const e = document.getElementById(arguments[0]);"
        "return e === null ? null : e.innerText.trim();", element_id)
    return None if shown is None else str(shown)


def wait_for(driver: WebDriver, **expected: str) -> None:
    """Wait until the page shows ``expected`` (element id -> text).

    Each wait names values the previous page cannot show, so a click's
    navigation is over when it returns; elements of the page being replaced
    go stale meanwhile, which only means "not yet".
    """
    try:
        WebDriverWait(driver, 15, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException,
            JavascriptException)).until(
            lambda d: all(text(d, key) == value for key, value in expected.items()))
    except TimeoutException:
        shown = {key: text(driver, key) for key in expected}
        raise AssertionError(f"expected {expected}, the page shows {shown}") from None


def test_log_in_on_flask_and_see_the_session_on_starlette(
        browser: WebDriver, instances: tuple[Instance, Instance], tmp_path: Path) -> None:
    a, b = instances
    browser.get(a.url + "/")
    wait_for(browser, instance="A", framework="Flask", user="anonymous", count="0")
    assert browser.get_cookie("session") is None  # nothing stored, nothing set

    name = browser.find_element(By.ID, "name")
    name.clear()
    name.send_keys("alice")
    browser.find_element(By.ID, "login").click()
    wait_for(browser, instance="A", user="alice", count="0")
    browser.find_element(By.ID, "increment").click()
    wait_for(browser, instance="A", user="alice", count="1")

    cookie = browser.get_cookie("session")
    assert cookie is not None
    assert COOKIE_RE.fullmatch(cookie["value"])
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == "127.0.0.1"  # host-only: shared by every port on the host
    # Like Flask's own session: not ``session.permanent``, so a browser-session
    # cookie (no Max-Age/Expires); the server still expires it by its idle timeout.
    assert "expiry" not in cookie

    # Same host, another port, another framework: the same session.
    browser.get(b.url + "/")
    wait_for(browser, instance="B", framework="Starlette", user="alice", count="1")
    browser.find_element(By.ID, "increment").click()
    wait_for(browser, instance="B", user="alice", count="2")

    # The page says who served it and what that cost: B's last request was the count.
    wait_for(browser, **{"served-by": "B", "previous-request": "POST /count",
                         "previous-calls": "1 read + 1 write"})
    assert text(browser, "calls") == "1 read"  # this page: the session read

    # The overflow step from the page: upload a 1 MB file; it goes to a blob.
    upload = tmp_path / "upload.bin"
    upload.write_bytes(secrets.token_bytes(1_000_000))
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.ID, "upload-file").click()
    wait_for(browser, instance="B", user="alice", upload="1000000")

    browser.find_element(By.ID, "other").click()  # the page's link back to A
    wait_for(browser, instance="A", user="alice", count="2", upload="1000000")
    assert text(browser, "served-by") == "A"
    assert "read" in (text(browser, "calls") or "")  # the row, then the blob

    browser.find_element(By.ID, "logout").click()
    wait_for(browser, instance="A", user="anonymous", count="0")
    assert browser.get_cookie("session") is None
    browser.get(b.url + "/")
    wait_for(browser, instance="B", user="anonymous", count="0")
