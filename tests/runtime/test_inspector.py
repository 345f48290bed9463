"""The web inspector (nexo-dev --web) in headless Chromium: the token guards it, the page
shows the frames live, a tool's form (built from its input_schema) calls it, an event
published from the page reaches the plugin, and the host's answers are listed."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium
from devhost_plugins import FIXTURES, ask_plugin, dev_session
from nexo_plugin_runtime.devhost.web import Inspector
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
def inspector(tmp_path: Path) -> Iterator[Inspector]:
    with dev_session(ask_plugin(tmp_path / "p"), FIXTURES) as session:
        page = Inspector(session)
        try:
            yield page
        finally:
            page.close()


def status(url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_only_the_url_with_the_token_opens_it(inspector: Inspector) -> None:
    base = f"http://127.0.0.1:{inspector.port}"
    token = {"X-Nexo-Dev-Token": inspector.token}
    assert status(inspector.url) == 200
    assert status(f"{base}/api/state", token) == 200
    assert status(f"{base}/") == 403
    assert status(f"{base}/?token=guessed") == 403
    assert status(f"{base}/api/state", {"X-Nexo-Dev-Token": inspector.token[:-1]}) == 403
    # A name that resolves here (DNS rebinding) but is not this page's.
    assert status(inspector.url, {"Host": f"attacker.example:{inspector.port}"}) == 403
    # Actions are JSON, which another site's page cannot post without asking first.
    assert (
        status(f"{base}/api/event", {**token, "Content-Type": "text/plain"}, b'{"payload": 1}')
        == 400
    )
    event = json.dumps({"payload": {"text": "hi"}, "topic": "plugin.outbound.nope"}).encode()
    assert status(f"{base}/api/event", {**token, "Content-Type": "application/json"}, event) == 400


def rows(driver: WebDriver, table: str) -> str:
    return "\n".join(row.text for row in driver.find_elements(By.CSS_SELECTOR, f"#{table} tr"))


@pytest.mark.slow  # a browser's start: the full tier's
def test_the_page_calls_a_tool_publishes_an_event_and_shows_the_answers(
    inspector: Inspector, tmp_path: Path
) -> None:
    session = inspector.session
    with chromium(tmp_path / "profile") as driver:
        wait = WebDriverWait(driver, 15)
        driver.get(inspector.url.split("?")[0])
        assert "open the URL nexo-dev printed" in driver.find_element(By.TAG_NAME, "body").text

        driver.get(inspector.url)
        wait.until(lambda d: d.title == "nexo-dev · proc")
        wait.until(lambda d: "initialize" in rows(d, "frames"))
        assert "Process (proc 0.3.0)" in driver.find_element(By.ID, "title").text

        form = driver.find_element(By.CSS_SELECTOR, 'form[data-tool="proc_ask"]')
        assert "what to answer" in form.text  # the schema's description
        form.find_element(By.NAME, "question").send_keys("When do we deploy?")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        result = form.find_element(By.CLASS_NAME, "result")
        wait.until(lambda d: "On Tuesday." in result.text)
        (call,) = [e.frame for e in session.entries if e.kind == "host" and "tool.invoke" in e.text]
        assert call["params"]["args"] == {"question": "When do we deploy?", "stream": False}
        wait.until(
            lambda d: "memory.recall" in rows(d, "calls") and "On Tuesday." in rows(d, "calls")
        )

        payload = driver.find_element(By.ID, "event-payload")
        payload.clear()
        payload.send_keys('{"text": "from the page"}')
        driver.find_element(By.ID, "event-send").click()
        published = 'broker.publish plugin.inbound.proc {"echo": {"text": "from the page"}}'
        wait.until(lambda d: published in rows(d, "frames"))
        assert any(e.kind == "plugin" and e.text == published for e in session.entries)
        # The README's picture: NEXO_INSPECTOR_SCREENSHOT=docs/inspector.png takes it anew.
        shot = Path(os.environ.get("NEXO_INSPECTOR_SCREENSHOT") or tmp_path / "inspector.png")
        assert driver.save_screenshot(str(shot.resolve()))
        assert shot.read_bytes().startswith(b"\x89PNG")
