"""Debian's Chromium, headless, driven by its own chromedriver through Selenium: a real
browser for the web inspector's tests. `.ci/run` installs both (packages chromium and
chromium-driver); elsewhere the tests that need them are skipped, saying so."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless in a sandboxed CI, on a closed network: no GPU, no first-run pages, no calls home.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """A Selenium WebDriver of headless Chromium with a new profile in `profile`."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)  # .ci/run installs them: their absence is a broken CI
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
