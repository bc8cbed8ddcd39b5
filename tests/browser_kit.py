"""The headless browser the page tests drive: Debian's `chromium` + `chromium-driver` through
Selenium (no browser downloads), a wait that re-reads re-rendered nodes, full-page screenshots at a
given width into tests/artifacts/, fetch() from inside the signed-in page, and a Wyoming client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By  # noqa: F401  (for the page tests)
from selenium.webdriver.support import expected_conditions as ec  # noqa: F401
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: F401  (Select: for the page tests)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # a missing browser fails the test rather than skipping it: ./build.sh test installs both
    assert Path(CHROMIUM).exists() and Path(DRIVER).exists(), \
        "Debian's chromium and chromium-driver are needed (./build.sh test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=DriverService(DRIVER))
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


class Wait(WebDriverWait):
    """The page re-renders parts of itself after a change: a node read while it is being replaced
    ("stale element", Chromium's "does not belong to the document") is read again on the next poll.
    Any other browser error goes through at once, not as a timeout."""

    def until(self, method, message: str = ""):
        def again(driver):
            try:
                return method(driver)
            except StaleElementReferenceException:
                return False
            except WebDriverException as exc:
                if "does not belong to the document" in str(exc):
                    return False
                raise
        return super().until(again, message)


def wait(driver, timeout: float = 15) -> Wait:
    return Wait(driver, timeout)


def shoot(driver, name: str, width: int) -> Path:
    """A full-page screenshot at this width (phone widths emulate a mobile viewport)."""
    ARTIFACTS.mkdir(exist_ok=True)
    mobile = width < 600
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 844 if mobile else 900, "deviceScaleFactor": 1, "mobile": mobile})
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": max(height, 600), "deviceScaleFactor": 1, "mobile": mobile})
    path = ARTIFACTS / f"{name}-{width}.png"
    driver.get_screenshot_as_file(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def fetch(driver, url: str, method: str = "GET", body: dict | None = None, csrf: bool = True) -> dict:
    """fetch() from inside the signed-in page, as its own script would (optionally without the token)."""
    return driver.execute_async_script("""
        const [url, method, body, withToken, done] = arguments;
        const headers = {"Content-Type": "application/json"};
        if (withToken) headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]').content;
        fetch(url, {method, headers, body: body ? JSON.stringify(body) : undefined, credentials: "same-origin"})
          .then(async r => done({status: r.status, text: await r.text()}))
          .catch(e => done({status: 0, text: String(e)}));
    """, url, method, body, csrf)


def wyoming_say(port: int, text: str, source: str = "127.0.0.1") -> list[str]:
    """A Wyoming client from `source` asks Hearth to speak: the event types it gets back."""
    from wyoming.event import async_read_event, async_write_event
    from wyoming.tts import Synthesize

    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            await async_write_event(Synthesize(text=text).event(), writer)
            types = []
            while (event := await asyncio.wait_for(async_read_event(reader), 30)) is not None:
                types.append(event.type)
                if event.type in ("error", "audio-stop"):
                    break
            return types
        finally:
            writer.close()
    return asyncio.run(go())
