"""The web page in a real browser: headless Chromium from Debian (`chromium` + `chromium-driver`),
driven by Selenium. Signs in, pairs a simulated device by typing the code it shows, changes the
voice, plays a test phrase, revokes the device, and is refused without the CSRF token. Saves
screenshots of every page at 390 px and 1280 px into tests/artifacts/."""

from __future__ import annotations

import shutil
import uuid

import pytest
import requests

from appliance.commands import client as device_client
from appliance.commands.client import DeviceLink
from appliance.commands.client import ClientError
from mqtt.client import Credentials
from browser_kit import ARTIFACTS, By, Select, browser, ec, fetch, shoot, wait, wyoming_say  # noqa: F401  (browser: the fixture)
from web_support import SLOW_VOICE, admin_password, start_web_hearth

PAGES = ("/", "/devices", "/voice", "/updates", "/privacy", "/system")
pytestmark = pytest.mark.own_hearth


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("browser"), wyoming={"enabled": True})
    yield h
    h.stop()


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
