"""Real-browser fixtures: Debian's Chromium, headless at 1366 x 900, driven by selenium
through /usr/bin/chromedriver against pytest-django's live server on 127.0.0.1.

A failing test leaves a screenshot in ``test-artifacts/`` (``JEEVES_TEST_ARTIFACTS``
names another folder). With ``JEEVES_SCREENSHOTS=docs/screenshots`` set, the tests
that show a page worth showing also save it there for the README (``Browser.show``).
Every wait is an explicit ``WebDriverWait`` on a condition, never a sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1366, 900
PASSWORD = "browser-test-password"  # a throwaway login in the test database
WAIT_S = 20.0

pytestmark = pytest.mark.slow


def _artifacts_dir() -> Path:
    return Path(os.environ.get("JEEVES_TEST_ARTIFACTS") or settings.BASE_DIR / "test-artifacts")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the test, so the fixture knows it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium(django_db_setup, live_server):
    """One headless Chromium for the session (starting one costs seconds).

    It quits before the live server stops, and both before the test database goes:
    Chromium's kept-alive connections hold the server's request threads, and with them
    their database connections, which PostgreSQL would not let the database be dropped
    with.
    """
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = "chromium and chromium-driver are not installed (scripts/test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        f"--window-size={WIDTH},{HEIGHT}",
        "--no-sandbox",  # root in CI containers: Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--lang=en-GB",
        "--no-first-run",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    yield driver
    driver.quit()


class Browser:
    """The session's Chromium pointed at this test's live server."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def get(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, what: str, condition: Callable[[webdriver.Chrome], object], timeout=WAIT_S):
        """``condition(driver)``'s first truthy value; fail naming ``what`` at the deadline."""
        # A page that reloads itself (a live run ending) can swap an element out
        # between finding it and reading it: look again.
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(condition, message=f"waiting for {what}")

    def wait_text(self, css: str, text: str, timeout=WAIT_S) -> WebElement:
        """The element at ``css`` once its text contains ``text``."""

        def shown(driver):
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if text in element.text:
                    return element
            return None

        return self.wait(f"{text!r} in {css}", shown, timeout)

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        """Log in through the admin's login form."""
        self.get("/admin/login/?next=/admin/")
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(password)
        self.find("input[type=submit]").click()
        self.wait("the console after logging in", lambda d: d.find_elements(By.ID, "user-tools"))

    def scrolls_sideways(self) -> bool:
        """The page, or the admin's result table in its own scroll box, is wider than shown."""
        return self.driver.execute_script(
            "const boxes = [document.documentElement, ...document.querySelectorAll('.results')];"
            "return boxes.some(e => e.scrollWidth > e.clientWidth);"
        )

    def show(self, name: str, whole_page: bool = False) -> None:
        """Save the page for the README when ``JEEVES_SCREENSHOTS`` names a folder;
        ``whole_page`` makes the window as tall as the page first (up to 3000 px)."""
        folder = os.environ.get("JEEVES_SCREENSHOTS")
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        if whole_page:
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(WIDTH, min(max(height + 100, HEIGHT), 3000))
        try:
            self.driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        finally:
            self.driver.set_window_size(WIDTH, HEIGHT)


@pytest.fixture
def browser(chromium, live_server, request) -> Browser:
    """The browser on this test's live server, logged out; a screenshot if the test fails."""
    chromium.delete_all_cookies()
    chromium.set_window_size(WIDTH, HEIGHT)
    yield Browser(chromium, live_server.url)
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = _artifacts_dir()
        folder.mkdir(parents=True, exist_ok=True)
        # A browser that died cannot be photographed; the failure says why.
        with contextlib.suppress(WebDriverException):
            chromium.save_screenshot(str(folder / f"{request.node.name}.png"))


@pytest.fixture
def operator(django_user_model):
    """A superuser who logs in with ``PASSWORD``."""
    return django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)
