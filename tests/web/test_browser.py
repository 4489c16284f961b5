"""The example app's page in a real headless Chromium (Debian's chromium + chromium-driver).

Skipped when no Chromium is installed; AGENTKIT_REQUIRE_BROWSER=1 (set by .ci/run) makes that
a failure instead.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import XSS, Served

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _missing(reason: str) -> None:
    if os.environ.get("AGENTKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (AGENTKIT_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        _missing("no chromium/chromedriver here (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1000,900"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting in the browser"
        time.sleep(0.02)


def texts(driver: Any, selector: str) -> list[str]:
    return [str(text) for text in driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", selector
    )]  # fmt: skip


def say(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    wait_for(lambda: driver.find_element(By.ID, "send").is_enabled())
    driver.find_element(By.ID, "message").send_keys(text)
    driver.find_element(By.ID, "send").click()


def test_chat_stream_approval_history_in_chromium(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url + "/")
    browser.find_element(By.ID, "token").send_keys("alice-token")
    browser.find_element(By.ID, "signin-button").click()
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready") == "1")

    # the answer arrives in pieces and is shown as it streams
    say(browser, "stream it")
    seen: list[str] = []

    def finished() -> bool:
        current = texts(browser, ".msg.assistant")
        if current:
            seen.append(current[-1])
        return bool(current) and current[-1] == "streaming word by word works"

    wait_for(finished)
    partial = [t for t in seen if t and t != "streaming word by word works"]
    assert partial, f"no partial text was ever shown: {seen}"
    assert all("streaming word by word works".startswith(t) for t in partial)

    # a tool call that needs approval: approve it, see the final answer
    say(browser, "refund order A-1")
    approve = wait_for(lambda: browser.find_elements(
        By.CSS_SELECTOR, '[data-tool-call-id="call-refund"] button.approve'))  # fmt: skip
    waiting = browser.find_element(By.CSS_SELECTOR, '[data-tool-call-id="call-refund"]')
    assert "refund_order" in waiting.text and '"amount": 20.0' in waiting.text
    looked_up = browser.find_element(By.CSS_SELECTOR, '[data-tool-call-id="call-look"] .result')
    assert "Order A-1 shipped on Monday." in looked_up.text
    assert not any("All done" in t for t in texts(browser, ".msg.assistant"))
    approve[0].click()
    final = "All done: Order A-1 shipped on Monday. | Refunded 20.00 on order A-1."
    wait_for(lambda: final in texts(browser, ".msg.assistant"))  # streamed: wait for all of it
    assert "Refunded 20.00" in browser.find_element(
        By.CSS_SELECTOR, '[data-tool-call-id="call-refund"] .result').text  # fmt: skip

    # a reload finds the history (the token and the session id stay in localStorage)
    browser.refresh()
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready") == "1")
    assert texts(browser, ".msg.user") == ["stream it", "refund order A-1"]
    assistant = texts(browser, ".msg.assistant")
    assert assistant[0] == "streaming word by word works"
    assert final in assistant
    assert browser.find_elements(By.CSS_SELECTOR, '[data-tool-call-id="call-refund"] .result')
    assert not browser.find_elements(By.CSS_SELECTOR, "button.approve")


def test_model_output_is_text_never_html_in_chromium(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url + "/")
    browser.find_element(By.ID, "token").send_keys("alice-token")
    browser.find_element(By.ID, "signin-button").click()
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready") == "1")
    for reload in (False, True):  # streamed, then rendered from the history
        if reload:
            browser.refresh()
            wait_for(lambda: browser.execute_script("return document.body.dataset.ready") == "1")
        else:
            say(browser, "xss <b>please</b>")
        wait_for(lambda: XSS in texts(browser, ".msg.assistant"))
        time.sleep(0.3)  # give an onerror handler (a failed image load) time to run
        assert browser.execute_script("return window.__pwned === undefined") is True
        assert not browser.find_elements(
            By.CSS_SELECTOR, "#messages img, #messages script, #messages b"
        )
        assert texts(browser, ".msg.user") == ["xss <b>please</b>"]  # the user's text too
