"""What Hearth heard, in a real browser (headless Chromium from Debian, as tests/test_web_browser.py):
three utterances stored by speaking to Hearth, one played in the page's <audio>, one marked right
(from the keyboard), one corrected, both allowed, the third refused until reviewed; the export holds
exactly those two rows with their audio, read with Python's csv and wave and with Hugging Face's
`datasets` audiofolder loader. Screenshots at 390 px and 1280 px into tests/artifacts/."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
import wave
import zipfile

import pytest

from appliance.commands import client
from appliance.commands.client import DeviceLink
from appliance.voice import dataset
from devices_kit import pair_device
from browser_kit import browser, shoot, wait  # noqa: F401  (browser: the fixture)
from voices import in_room, quiet, say, to_wav
from web_support import admin_password, start_web_hearth

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402

pytestmark = pytest.mark.own_hearth
TEXTS = ["Turn off the hall light.", "Remind Niamh about the dentist.", "Set a timer for ten minutes."]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("heard"), privacy={"store_utterances": True})
    yield h
    h.stop()


def item(d, uid: str):
    return d.find_element(By.CSS_SELECTOR, f".heard-item[data-id='{uid}']")


def state_is(uid: str, state: str):
    return lambda d: item(d, uid).find_element(By.CSS_SELECTOR, ".state").text == state


def export_in_page(d) -> bytes:
    """The export as the signed-in page downloads it (fetch with its cookie), base64 across the wire."""
    out = d.execute_async_script("""
        const done = arguments[0];
        fetch('/api/privacy/export', {credentials: 'same-origin'}).then(async r => {
          const bytes = new Uint8Array(await r.arrayBuffer());
          let s = ''; for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
          done({status: r.status, type: r.headers.get('Content-Type'), b64: btoa(s)});
        }).catch(e => done({status: 0, type: String(e), b64: ''}));
    """)
    assert out["status"] == 200 and out["type"] == "application/zip", out["type"]
    return base64.b64decode(out["b64"])


def load_with_datasets(folder) -> list[dict]:
    """Hugging Face's audiofolder loader, offline, in a process of its own (its caches in tmp)."""
    code = """
import json, sys
from datasets import Audio, load_dataset
ds = load_dataset("audiofolder", data_dir=sys.argv[1], split="train").cast_column("audio", Audio(decode=False))
print(json.dumps([{k: (v["path"] if k == "audio" else v) for k, v in row.items()} for row in ds]))
"""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(folder.parent / "hf")}
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_review_play_correct_allow_and_export_in_chromium(web, browser, tmp_path):  # noqa: F811
    d, base = browser, web.web_url
    kitchen = pair_device(web, "Kitchen speaker", device_type="satellite", room="Kitchen")
    with DeviceLink(kitchen.credentials) as link:
        heard = [client.transcribe(link, to_wav(in_room([quiet(0.3), say(web, "piper", t), quiet(0.8)], seed=i)))
                 .final.text for i, t in enumerate(TEXTS)]

    d.get(base + "/privacy")
    d.find_element(By.ID, "password").send_keys(admin_password(web))
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d).until(ec.url_contains("/privacy"))
    wait(d).until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, ".heard-item")) == 3 or drv.refresh())
    rows = d.find_elements(By.CSS_SELECTOR, ".heard-item")
    ids = [r.get_attribute("data-id") for r in rows][::-1]          # oldest first, as spoken
    texts = [item(d, uid).find_element(By.CSS_SELECTOR, ".heard-text").text.strip("“”") for uid in ids]
    assert texts == heard
    assert "Kitchen speaker" in rows[0].text and "Kitchen" in rows[0].text and "tiny" in rows[0].text

    # play one: the <audio> loads the WAV from the signed-in route and plays
    d.execute_script("arguments[0].scrollIntoView(); arguments[0].play()", item(d, ids[0]).find_element(By.TAG_NAME, "audio"))
    wait(d, 30).until(lambda drv: drv.execute_script(
        "const a = arguments[0]; return a.readyState >= 1 && a.duration > 0 && !a.error",
        item(drv, ids[0]).find_element(By.TAG_NAME, "audio")))
    played = d.execute_script("const a = arguments[0]; return {duration: a.duration, error: a.error && a.error.code}",
                              item(d, ids[0]).find_element(By.TAG_NAME, "audio"))
    assert played["error"] is None and 1.0 < played["duration"] < 8

    # mark the first right, from the keyboard (focus the button, Enter)
    right = item(d, ids[0]).find_element(By.CSS_SELECTOR, "button[value=right]")
    d.execute_script("arguments[0].focus()", right)
    ActionChains(d).send_keys(Keys.ENTER).perform()
    wait(d).until(state_is(ids[0], "right"))
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Marked right"))

    # correct the second: a 100 kB correction first is refused with the limit, then the real one
    box = item(d, ids[1]).find_element(By.NAME, "corrected")
    d.execute_script("arguments[0].removeAttribute('maxlength'); arguments[0].value = 'x'.repeat(100000)", box)
    item(d, ids[1]).find_element(By.CSS_SELECTOR, "button[value=wrong]").click()
    error = wait(d).until(lambda drv: (e := item(drv, ids[1]).find_element(By.CSS_SELECTOR, "[data-heard-error]")).is_displayed() and e)
    assert "at most 2000 characters" in error.text
    assert item(d, ids[1]).find_element(By.CSS_SELECTOR, ".state").text == "not reviewed"
    box.clear()
    box.send_keys(TEXTS[1])
    item(d, ids[1]).find_element(By.CSS_SELECTOR, "button[value=wrong]").click()
    wait(d).until(state_is(ids[1], "wrong"))

    # allow both; the third, not reviewed, cannot be allowed
    for uid in ids[:2]:
        item(d, uid).find_element(By.CSS_SELECTOR, ".consent-button").click()
        wait(d).until(lambda drv, uid=uid: "allowed for export by admin" in item(drv, uid).find_element(By.CSS_SELECTOR, ".consent").text)
    item(d, ids[2]).find_element(By.CSS_SELECTOR, ".consent-button").click()
    wait(d).until(lambda drv: "review it first" in item(drv, ids[2]).find_element(By.CSS_SELECTOR, "[data-heard-error]").text)
    assert item(d, ids[2]).find_element(By.CSS_SELECTOR, ".consent").text == "not allowed for export"

    # the page after a reload says the same (kept on the box, not only in the page)
    d.refresh()
    assert item(d, ids[1]).find_element(By.NAME, "corrected").get_attribute("value") == TEXTS[1]
    assert [item(d, uid).get_attribute("data-state") for uid in ids] == ["right", "wrong", "unreviewed"]
    for width in (390, 1280):
        shoot(d, "privacy-heard", width)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:     # on a phone nothing runs off the side of the screen
        assert d.execute_script("return document.documentElement.scrollWidth") <= 390
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # export: exactly the two reviewed, allowed rows, with their audio (csv + wave)
    content = export_in_page(d)
    zf = zipfile.ZipFile(io.BytesIO(content))
    meta = list(csv.DictReader(io.StringIO(zf.read(f"{dataset.FOLDER}/metadata.csv").decode(), newline="")))
    assert [(m["transcript"], m["state"], m["corrected_transcript"]) for m in meta] == \
        [(heard[0], "right", ""), (heard[1], "wrong", TEXTS[1])]
    assert all(m["consent_by"] == "admin" and m["consent_at"] and m["device_type"] == "satellite" for m in meta)
    wavs = sorted(n for n in zf.namelist() if n.endswith(".wav"))
    assert wavs == sorted(f"{dataset.FOLDER}/{m['file_name']}" for m in meta)
    for m in meta:
        with wave.open(io.BytesIO(zf.read(f"{dataset.FOLDER}/{m['file_name']}"))) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert abs(w.getnframes() / 16000 - float(m["duration_s"])) < 0.01 and w.getnframes() > 16000

    # and with Hugging Face's audiofolder loader: the same two rows, each joined to its WAV
    zf.extractall(tmp_path)
    rows = load_with_datasets(tmp_path / dataset.FOLDER)
    assert [(r["transcript"], r["state"]) for r in rows] == [(heard[0], "right"), (heard[1], "wrong")]
    assert [os.path.basename(r["audio"]) for r in rows] == [m["file_name"] for m in meta]
