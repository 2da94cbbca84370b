"""Debian's headless Chromium through chromedriver (both installed by scripts/setup as root)."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def chromium():
    """A headless Chromium session that keeps the page's console messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: run scripts/setup as root, "
                    "or apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def open_page(browser, index: Path, timeout: float = 20.0) -> None:
    """Load ``index`` from disk and wait until its script has drawn the first view."""
    browser.get(index.resolve().as_uri())
    deadline = time.monotonic() + timeout
    while browser.execute_script("return document.documentElement.dataset.ready") != "1":
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not draw its first view in {timeout} s; console: {browser.get_log('browser')}")
        time.sleep(0.05)


def wait_for(browser, script: str, timeout: float = 10.0):
    """Poll a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while not (value := browser.execute_script("return " + script)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.05)
    return value


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot_spread(browser) -> tuple[int, float]:
    """(distinct colours, standard deviation of the grey levels) of a screenshot."""
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    pixels = np.asarray(image)
    return len(np.unique(pixels.reshape(-1, 3), axis=0)), float(pixels.mean(axis=2).std())
