"""The web console in a real browser: headless Debian chromium driven by Selenium, against
``hookline api``'s app served by uvicorn on a loopback port, a real worker and a loopback
receiver. Screenshots go to ``$TEST_HOOKLINE_ARTIFACTS/console/`` (default: the system's
temporary directory)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.api import create_app
from app.receiver import Receiver, Route
from tests.integration.api_callers import Caller
from tests.integration.conftest import Stack, free_port
from tests.support import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def artifacts_dir() -> Path:
    root = Path(os.environ.get("TEST_HOOKLINE_ARTIFACTS") or tempfile.gettempdir())
    target = root / "console"
    target.mkdir(parents=True, exist_ok=True)
    return target


class LiveApi:
    """The API app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="console-api")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveApi:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=20, what="uvicorn to serve the API")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.fail(f"chromium did not start: {exc.msg}", pytrace=False)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


class Shots:
    """Numbered screenshots of the browser, kept as the test's artifacts."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.dir = artifacts_dir()
        self.count = 0

    def take(self, name: str) -> Path:
        self.count += 1
        path = self.dir / f"{self.count:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {path} not saved"
        return path


def navigate(driver: WebDriver, element: WebElement) -> None:
    """Click *element* and wait until the page it leads to has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 20).until(staleness_of(page))
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def test_an_operator_logs_in_filters_opens_a_delivery_and_requeues_a_dead_letter_that_then_succeeds(
    stack: Stack, acme: Caller, receiver: Receiver, browser: WebDriver
) -> None:
    accepting = acme.call("POST", "/webhooks", json={
        "endpoint": receiver.url("/ok"), "events": ["crew.status.changed"]}).json()
    rejecting = acme.call("POST", "/webhooks", json={
        "endpoint": receiver.url("/rejects"), "events": ["crew.status.changed"]}).json()
    receiver.route("/ok", Route(statuses=[200]))
    rejects = Route(statuses=[400])
    receiver.route("/rejects", rejects)
    stack.worker()
    event = acme.call("POST", "/events", json={"type": "crew.status.changed",
                                               "data": {"crew_id": "c-42", "status": "active"}}).json()
    wait_until(lambda: acme.call("GET", "/dead-letters").json()["items"], timeout=30,
               what="the rejected delivery to be dead-lettered")
    [dead] = acme.call("GET", "/dead-letters").json()["items"]
    assert dead["webhookId"] == rejecting["id"]
    delivered = next(i for i in event["deliveryIds"] if i != dead["deliveryId"])

    shots = Shots(browser)
    with LiveApi(create_app(stack.hookline)) as api:
        # A wrong key: the login page again, saying only that the key was not accepted.
        browser.get(f"{api.url}/console")
        assert browser.current_url.endswith("/console/login")
        browser.find_element(By.ID, "key").send_keys("hl_wrong")
        navigate(browser, browser.find_element(By.ID, "login"))
        assert text_of(browser, "#login-error") == "That key was not accepted."
        shots.take("login-refused")

        browser.find_element(By.ID, "key").send_keys(acme.key)
        navigate(browser, browser.find_element(By.ID, "login"))
        assert browser.current_url == f"{api.url}/console"
        assert text_of(browser, "#viewer") == "acme"
        # The page polls its numbers; the stamp changes once the first poll answered.
        wait_until(lambda: text_of(browser, "#updated") != "now", timeout=10,
                   what="the throughput poll")
        assert text_of(browser, "#dead") == "1"
        shots.take("throughput")

        # Deliveries: a bad time filter is an inline error; the state filter narrows the list.
        browser.get(f"{api.url}/console/deliveries?since=last+tuesday")
        assert "not a time" in text_of(browser, "#filter-errors")
        browser.get(f"{api.url}/console/deliveries")
        listed = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.delivery-link")}
        assert listed == {dead["deliveryId"], delivered}
        Select(browser.find_element(By.NAME, "state")).select_by_value("dead")
        browser.find_element(By.NAME, "webhook").send_keys(rejecting["id"])
        navigate(browser, browser.find_element(By.ID, "apply"))
        links = browser.find_elements(By.CSS_SELECTOR, "a.delivery-link")
        assert [a.text for a in links] == [dead["deliveryId"]]
        shots.take("deliveries-filtered")

        # One delivery: its 400 attempt, the receiver's answer, headers without signatures.
        navigate(browser, links[0])
        attempt = text_of(browser, "#attempt-1")
        assert "HTTP 400" in attempt and '{"error":"scripted"}' in attempt
        assert "X-CrewPass-Event-Type" in attempt and "withheld" in attempt
        assert text_of(browser, "#delivery-state") == "dead"
        shots.take("delivery-dead")

        # Dead letters: requeue by filter, counted first by a dry run.
        browser.get(f"{api.url}/console/dead-letters?webhook={rejecting['id']}")
        navigate(browser, browser.find_element(By.ID, "requeue-preview"))
        assert text_of(browser, "#would-requeue") == "1"
        shots.take("requeue-dry-run")
        assert acme.call("GET", f"/deliveries/{dead['deliveryId']}").json()["state"] == "dead"
        rejects.statuses = [200]
        navigate(browser, browser.find_element(By.ID, "requeue-confirm"))
        assert text_of(browser, "#requeue-result").startswith("1 requeued")
        navigate(browser, browser.find_element(By.CSS_SELECTOR, "a.requeued"))

        def succeeded() -> bool:
            browser.refresh()
            return text_of(browser, "#delivery-state") == "succeeded"

        wait_until(succeeded, timeout=30, interval=0.5, what="the requeued delivery to succeed")
        assert "HTTP 200" in text_of(browser, "#attempt-2")
        shots.take("delivery-succeeded")
        assert [r.status for r in receiver.for_path("/rejects")] == [400, 200]

        browser.get(f"{api.url}/console/endpoints")
        health = text_of(browser, f"#endpoint-{rejecting['id']}")
        assert "50 %" in health and "HTTP 400" in health and "closed" in health
        assert "100 %" in text_of(browser, f"#endpoint-{accepting['id']}")
        shots.take("endpoints")
    assert shots.count == 7 and all(p.stat().st_size > 1000 for p in shots.dir.glob("0*.png"))
