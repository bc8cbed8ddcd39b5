"""The web page in a real browser: headless Chromium from Debian (`chromium` + `chromium-driver`),
driven by Selenium. Signs in, pairs a simulated device by typing the code it shows, changes the
voice, plays a test phrase, revokes the device, and is refused without the CSRF token. Saves
screenshots of every page at 390 px and 1280 px into tests/artifacts/."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest
import requests

from appliance.commands import client as device_client
from appliance.commands.client import DeviceLink
from appliance.commands.client import ClientError
from mqtt.client import Credentials
from web_support import SLOW_VOICE, admin_password, start_web_hearth

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PAGES = ("/", "/devices", "/voice", "/updates", "/privacy", "/system")
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.own_hearth


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("browser"), wyoming={"enabled": True})
    yield h
    h.stop()


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


def test_the_household_flow_in_chromium(web, browser):
    base = web.web_url
    d = browser
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)

    # sign in (the login page first, as a person sees it)
    d.get(base + "/voice")
    assert "/login" in d.current_url
    for width in (390, 1280):
        shoot(d, "login", width)
    d.find_element(By.ID, "password").send_keys("wrong-password")
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert "not right" in wait(d).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".err"))).text
    d.find_element(By.ID, "password").send_keys(admin_password(web))
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d).until(ec.url_contains("/voice"))
    cookie = d.get_cookie("hearth_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # a simulated device asks to pair (the Mycroft device API, over real HTTP)
    state = uuid.uuid4().hex
    pairing = requests.get(f"{base}/v1/device/code", params={"state": state, "name": "Kitchen speaker",
                                                             "type": "satellite"}).json()
    assert requests.post(f"{base}/v1/device/activate", json={"state": state, "token": pairing["token"]}).status_code == 401
    d.get(base + "/devices")
    # the request shows its name and address but not its code: the person types what the device shows
    row = wait(d).until(ec.presence_of_element_located(
        (By.XPATH, "//ul[@class='pending']/li[span[@class='who' and contains(., 'Kitchen speaker')]]")))
    assert "127.0.0.1" in row.text and pairing["code"] not in d.page_source
    d.execute_script("document.querySelectorAll('li[data-request] form').forEach(f => f.noValidate = true)")
    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()       # no code typed: refused, nobody let in
    error = wait(d).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "li[data-request] .err")))
    assert "type the code" in error.text and not web.service.devices.list()
    row = d.find_element(By.XPATH, "//ul[@class='pending']/li[span[@class='who' and contains(., 'Kitchen speaker')]]")
    row.find_element(By.NAME, "code").send_keys(pairing["code"][:3].lower() + " " + pairing["code"][3:])
    row.find_element(By.NAME, "room").send_keys("Kitchen")
    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Let Kitchen speaker in"))
    activated = requests.post(f"{base}/v1/device/activate", json={"state": state, "token": pairing["token"]})
    assert activated.status_code == 200
    mqtt = activated.json()["mqtt"]
    creds = Credentials("127.0.0.1", mqtt["port"], mqtt["username"], mqtt["password"])
    with DeviceLink(creds) as link:
        assert device_client.say(link, "Hello kitchen.").end.chunks >= 1
    d.refresh()
    device = wait(d).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"article[data-device='{mqtt['username']}']")))
    assert "Kitchen speaker" in device.text and "Kitchen" in device.text
    # Home Assistant (a Wyoming client) is refused until the person allows its address on the page
    port = web.service.wyoming.port
    assert wyoming_say(port, "Hello.") == ["error"]
    assert wyoming_say(port, "Hello.", source="127.0.0.2") == ["error"]       # a stranger stays waiting
    d.get(base + "/devices")
    waiting = wait(d).until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, "#wyoming .wyoming-waiting li[data-address='127.0.0.1']")))
    assert "127.0.0.1 wants speech" in " ".join(waiting.text.split())
    waiting.find_element(By.XPATH, ".//button[text()='Allow']").click()
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Allowed Wyoming clients from 127.0.0.1"))
    assert wyoming_say(port, "Hello from Home Assistant.")[-1] == "audio-stop"
    assert wyoming_say(port, "Hello.", source="127.0.0.2") == ["error"]
    assert d.find_elements(By.CSS_SELECTOR, "#wyoming .wyoming-allowed li[data-address='127.0.0.1']")

    # a second request waits, so the screenshots show both parts of the page
    requests.get(f"{base}/v1/device/code", params={"state": uuid.uuid4().hex, "name": "Bedroom satellite"})
    d.refresh()
    d.execute_script("document.querySelectorAll('details').forEach(x => x.open = true)")
    for width in (390, 1280):
        shoot(d, "devices", width)

    # change the voice; a bad value first: the message appears next to its field and nothing changes
    d.get(base + "/voice")
    silence = d.find_element(By.ID, "silence")
    silence.clear()
    silence.send_keys("20")
    d.execute_script("document.querySelector('form[data-api]').noValidate = true")   # let the server judge it
    d.find_element(By.CSS_SELECTOR, "form[data-api] button[type=submit]").click()
    error = wait(d).until(ec.visibility_of_element_located((By.CSS_SELECTOR, '[data-error-for="endpoint.silence_ms"]')))
    assert "between 100 and 3000" in error.text
    assert web.service.settings.endpoint.silence_ms == 300
    for width in (390, 1280):
        shoot(d, "voice-error", width)
    silence.clear()
    silence.send_keys("400")
    Select(d.find_element(By.ID, "voice")).select_by_value(SLOW_VOICE)
    d.find_element(By.CSS_SELECTOR, "form[data-api] button[type=submit]").click()
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Saved"))
    assert web.service.settings.tts.voice == SLOW_VOICE and web.service.voices.default == SLOW_VOICE
    assert web.service.settings.endpoint.silence_ms == 400

    # play a test phrase: the <audio> element gets a WAV that Chromium decodes
    d.get(base + "/voice")
    text = d.find_element(By.ID, "speak-text")
    text.clear()
    text.send_keys("Dinner is ready.")
    d.find_element(By.CSS_SELECTOR, "#speak button[type=submit]").click()
    wait(d, 30).until(lambda drv: drv.execute_script(
        "const a = document.getElementById('speak-audio'); return a.src && a.readyState >= 1 && a.duration > 0"))
    audio = d.execute_async_script("""
        const done = arguments[0], a = document.getElementById('speak-audio');
        fetch(a.src).then(r => r.arrayBuffer()).then(b => {
          const h = new Uint8Array(b, 0, 44), s = x => String.fromCharCode(...h.slice(x, x + 4));
          done({riff: s(0), wave: s(8), rate: new DataView(b).getUint32(24, true), bytes: b.byteLength,
                duration: a.duration, error: a.error && a.error.code});
        }).catch(e => done({riff: String(e)}));
    """)
    assert audio["riff"] == "RIFF" and audio["wave"] == "WAVE" and audio["rate"] == 22050
    assert audio["error"] is None and 0.5 < audio["duration"] < 6 and audio["bytes"] > 20000
    for width in (390, 1280):
        shoot(d, "voice", width)

    # the other pages render (screenshots at both widths); one firmware image cached for Updates
    import json
    from firmware_support import image, release_doc
    usb = ARTIFACTS.parent / ".usb-import"
    usb.mkdir(exist_ok=True)
    data = image(24 << 10)
    (usb / "satellite-1.4.2.bin").write_bytes(data)
    (usb / "satellite.json").write_text(json.dumps(release_doc("satellite", "1.4.2", data, "satellite-1.4.2.bin")))
    try:
        assert [o.state for o in web.service.firmware.import_dir(usb)] == ["cached"]
    finally:
        shutil.rmtree(usb)
    for path in ("/", "/updates", "/privacy", "/system"):
        d.get(base + path)
        # rendered, not an error page: the System page may show a logged traceback among the recent
        # log lines (another test's in this process), so the status is what is checked
        status = d.execute_async_script("fetch(arguments[0]).then(r => arguments[1](r.status))", base + path)
        assert status == 200 and d.find_element(By.TAG_NAME, "h1").text, (path, status)
        name = "overview" if path == "/" else path.strip("/")
        for width in (390, 1280):
            shoot(d, name, width)

    # revoke the device: its login stops working
    d.get(base + "/devices")
    device = d.find_element(By.CSS_SELECTOR, f"article[data-device='{mqtt['username']}']")
    device.find_element(By.CSS_SELECTOR, "form[action$='/revoke'] button").click()
    wait(d).until(ec.alert_is_present()).accept()
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Removed the device"))
    assert not d.find_elements(By.CSS_SELECTOR, f"article[data-device='{mqtt['username']}']")
    with pytest.raises(ClientError):
        DeviceLink(creds).__enter__()

    # a state-changing call without the CSRF token is refused, with it the same call works
    refused = fetch(d, "/api/voice", "POST", {"endpoint.silence_ms": 500}, csrf=False)
    assert refused["status"] == 403 and '"csrf"' in refused["text"]
    assert web.service.settings.endpoint.silence_ms == 400
    assert fetch(d, "/api/voice", "POST", {"endpoint.silence_ms": 500})["status"] == 200
    assert web.service.settings.endpoint.silence_ms == 500

    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    for page in ("login", "overview", "devices", "voice", "updates", "privacy", "system"):
        assert f"{page}-390.png" in shots and f"{page}-1280.png" in shots
