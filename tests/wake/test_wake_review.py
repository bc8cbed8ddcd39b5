"""Wake word review (appliance/wake/review.py) and the Privacy page's dataset form, on a Hearth of
their own with real Mosquitto, wake word models, VAD and Whisper, signed in to the web page.

A satellite that hears the wake word and then silence leaves one "no command" clip (with the
switch on; with it off, the same audio leaves none); a wake word followed by a command leaves none;
a command a streaming satellite starts without the wake word leaves a "no detection" clip; marking
the clip "false wake" moves the Overview's counts; the page plays it in Chromium."""

from __future__ import annotations

import threading
import time
import uuid
import wave

import pytest
import requests

import voices
from appliance.audio.pcm import level_dbfs
from appliance.commands import client as device_client
from appliance.commands import satellite
from mqtt import wake as w
from dataset_kit import SENTENCES, reseal, write_set  # noqa: F401  (the same sets as the import tests)
from dataset_kit import clips  # noqa: F401  (fixture)
from browser_kit import browser, wait  # noqa: F401  (fixture)
from web_support import admin_password, sign_in, start_web_hearth

pytestmark = [pytest.mark.own_hearth, pytest.mark.realtime]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("wake-review"))
    yield h
    h.stop()


@pytest.fixture(scope="module")
def http(web) -> requests.Session:
    return sign_in(web.web_url, admin_password(web))[0]


def in_room(web, *parts):
    """Speech (Piper) and pauses, with room noise under all of it, as a satellite's microphone hears it."""
    pcm = [voices.say(web, "piper", p) if isinstance(p, str) else voices.quiet(p) for p in parts]
    return voices.to_wav(voices.in_room(pcm, seed=len(parts)))


def clips_of(http, base, device) -> list[dict]:
    return http.get(f"{base}/api/privacy/wake", params={"device": device}).json()["clips"]


def overview_counts(http, base, device) -> dict:
    return http.get(f"{base}/api/overview").json()["wake_review"]["devices"].get(device, {})


def settle(web, device: str, want: int, timeout: float = 10.0) -> list[dict]:
    """The clip is written on the chores thread just after the final: wait for it (or for nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = web.service.wake_review.clips(device)
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_a_wake_word_then_silence_leaves_one_clip_to_mark(web, http):
    base, device = web.web_url, "porch-satellite"
    link = web.device(device)
    silence_after = in_room(web, 1.0, "Hey Mycroft.", 6.0)
    # off (the default): the wake word is heard, the session ends with no words, nothing is kept
    assert web.settings.privacy.store_wake_clips is False
    heard = satellite.run(link, silence_after, tail_s=0.5)
    assert len(heard.of("detected")) == 1 and [f.text for f in heard.of("final")] == [""], heard.events
    assert settle(web, device, 1, timeout=3) == []
    # on, through the Privacy page's switch: the same audio leaves one "no command" clip
    assert http.post(f"{base}/api/privacy", json={"store_wake_clips": True}).status_code == 200
    heard = satellite.run(link, silence_after, tail_s=0.5)
    assert len(heard.of("detected")) == 1 and [f.text for f in heard.of("final")] == [""], heard.events
    rows = settle(web, device, 1)
    assert [(r["kind"], r["mark"], r["text"]) for r in rows] == [("no_command", "", "")]
    clip = rows[0]
    # the clip holds the wake word (the seconds before the session) and what followed, capped
    audio = http.get(f"{base}/api/privacy/wake/{clip['id']}.wav")
    assert audio.status_code == 200 and audio.headers["Content-Type"].startswith("audio/wav")
    assert 4.0 <= clip["audio_s"] <= 8.0
    with wave.open(__import__("io").BytesIO(audio.content)) as wav:
        assert wav.getframerate() == 16000 and abs(wav.getnframes() / 16000 - clip["audio_s"]) < 0.01
    # the wake word is in its first seconds (speech, well over the room), the silence after it
    pcm = audio.content[44:]
    first = max(level_dbfs(pcm[i:i + 8000]) for i in range(0, 3 * 32000, 8000))     # its loudest 0.25 s
    last = level_dbfs(pcm[-32000:])
    assert first > last + 12, (first, last)
    assert web.service.engine.transcribe(pcm[:3 * 32000]).strip()          # words, whatever tiny.en makes of them
    # a wake word and a command: the command was heard, no clip
    heard = satellite.run(link, in_room(web, 1.0, "Hey Mycroft, what time is it?", 2.0), tail_s=0.5)
    assert heard.of("final") and heard.of("final")[0].text.strip(), heard.events
    assert len(settle(web, device, 2, timeout=3)) == 1
    # the Overview counts it, and a person marks it a false wake
    before = overview_counts(http, base, device)
    assert (before["no_command"], before["false_wake"], before["unmarked"]) == (1, 0, 1)
    for bad, status in (({"clip": clip["id"], "mark": "missed_wake"}, 422), ({"clip": "../../etc/passwd", "mark": "false_wake"}, 422),
                        ({"clip": "2020-01-01/000000-000000-x", "mark": "false_wake"}, 404)):
        assert http.post(f"{base}/api/privacy/wake/mark", json=bad).status_code == status
    assert overview_counts(http, base, device) == before          # refused marks changed nothing
    reply = http.post(f"{base}/api/privacy/wake/mark", json={"clip": clip["id"], "mark": "false_wake"})
    assert reply.status_code == 200 and reply.json()["clip"]["mark"] == "false_wake"
    after = overview_counts(http, base, device)
    assert (after["no_command"], after["false_wake"], after["unmarked"]) == (1, 1, 0)
    page = http.get(f"{base}/").text
    assert f'<tr data-device="{device}"><td>{device}</td><td class="false-wake">1</td>' in page
    assert clips_of(http, base, device)[0]["mark"] == "false_wake"


def test_a_command_started_without_the_wake_word_leaves_a_no_detection_clip(web, http):
    base, device = web.web_url, "hall-satellite"
    assert http.post(f"{base}/api/privacy", json={"store_wake_clips": True}).status_code == 200
    link = web.device(device)
    stream_id = uuid.uuid4().hex[:12]
    stop = threading.Event()
    room = in_room(web, 12.0)
    sender = threading.Thread(target=satellite.stream, args=(link, room, stream_id, 0.0), kwargs={"stop": stop}, daemon=True)
    sender.start()
    try:
        time.sleep(1.0)                            # the stream is open: this satellite listens for the wake word
        command = in_room(web, 0.3, "Turn on the porch light.", 0.5)
        final = device_client.transcribe(link, command, "device", timeout=30).final
        assert "porch" in final.text.lower(), final.text
        rows = settle(web, device, 1)
        assert [(r["kind"], r["mark"]) for r in rows] == [("no_detection", "")] and "porch" in rows[0]["text"].lower()
        counts = overview_counts(http, base, device)
        assert (counts["no_detection"], counts["missed_wake"]) == (1, 0)
        assert http.post(f"{base}/api/privacy/wake/mark", json={"clip": rows[0]["id"], "mark": "missed_wake"}).ok
        assert overview_counts(http, base, device)["missed_wake"] == 1
    finally:
        stop.set()
        sender.join(5)
        link.publish(w.wake_end(device), w.WakeEnd(stream=stream_id).to_payload())
    # a device that does not stream: its commands are not wake word mistakes
    plain = web.device("kitchen-speaker")
    assert device_client.transcribe(plain, command, "device", timeout=30).final.text
    assert settle(web, "kitchen-speaker", 1, timeout=3) == []
    # one click deletes every clip (the Overview's counts with them)
    assert web.service.wake_review.clips() and http.post(f"{base}/api/privacy/wake/delete").status_code == 200
    assert web.service.wake_review.clips() == [] and overview_counts(http, base, device) == {}


def test_the_privacy_page_imports_a_dataset_or_says_why_not(web, http, clips, tmp_path):  # noqa: F811
    base = web.web_url
    bad = write_set(tmp_path / "bad", clips)
    (bad / "audio" / "001.wav").write_bytes(b"not audio at all" * 100)
    reseal(bad)
    reply = http.post(f"{base}/api/privacy/datasets/import", json={"path": str(bad), "name": "neighbours"})
    assert reply.status_code == 422
    assert (reply.json()["file"], reply.json()["error"]) == ("audio/001.wav", "bad_audio")
    assert "not a PCM WAV" in reply.json()["errors"]["path"]
    assert http.post(f"{base}/api/privacy/datasets/import", json={"path": "relative/path"}).status_code == 422
    assert http.get(f"{base}/api/privacy/datasets").json()["datasets"] == []
    good = write_set(tmp_path / "neighbours", clips)
    reply = http.post(f"{base}/api/privacy/datasets/import", json={"path": str(good)})
    assert reply.status_code == 200 and reply.json()["dataset"]["rows"] == 3
    assert [d["name"] for d in http.get(f"{base}/api/privacy/datasets").json()["datasets"]] == ["neighbours"]
    assert http.post(f"{base}/api/privacy/datasets/remove", json={"name": "neighbours"}).status_code == 200
    assert http.post(f"{base}/api/privacy/datasets/remove", json={"name": "neighbours"}).status_code == 404
    # without the CSRF token: refused, nothing imported
    plain = requests.Session()
    plain.cookies.update(http.cookies)
    assert plain.post(f"{base}/api/privacy/datasets/import", json={"path": str(good)}).status_code == 403
    assert web.service.datasets.list() == []


def test_the_privacy_page_in_chromium(web, http, browser, clips, tmp_path):  # noqa: F811
    """A person imports a set by typing its path, is told why a bad one is refused, plays a wake word
    clip and marks it, at a phone's width. The clip is the one the first test left (run alone, one
    kept the same way from the same audio)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    base, d = web.web_url, browser
    d.set_window_size(390, 900)
    d.get(base + "/privacy")
    if "/login" in d.current_url:
        d.find_element(By.ID, "password").send_keys(admin_password(web))
        d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait(d).until(ec.url_contains("/privacy"))
    bad = write_set(tmp_path / "formula", clips)
    (bad / "metadata.csv").write_text((bad / "metadata.csv").read_text().replace("Set a timer", "=HYPERLINK(1)"))
    reseal(bad)
    path = d.find_element(By.ID, "dataset-path")
    path.send_keys(str(bad))
    d.find_element(By.CSS_SELECTOR, "#dataset-import button[type=submit]").click()
    error = wait(d).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#dataset-import [data-error-for=path]")))
    assert "metadata.csv: line 3, column transcript" in error.text and "formula" in error.text
    path.clear()
    path.send_keys(str(write_set(tmp_path / "neighbours", clips)))
    d.find_element(By.CSS_SELECTOR, "#dataset-import button[type=submit]").click()
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Imported neighbours: 3 utterances"))
    assert "neighbours" in d.find_element(By.ID, "datasets").text
    # the porch satellite's clip, marked a false wake: it plays, and a person says it was fine after all
    if not web.service.wake_review.clips("porch-satellite"):
        pcm = voices.to_wav(voices.in_room([voices.quiet(1.0), voices.say(web, "piper", "Hey Mycroft."), voices.quiet(4.0)])).pcm
        web.service.wake_review._keep("porch-satellite", "no_command", "", pcm)
    clip = web.service.wake_review.clips("porch-satellite")[0]
    web.service.wake_review.mark(clip["id"], "false_wake")
    d.get(base + "/privacy?device=porch-satellite&mark=any#wake-review")
    item = wait(d).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#wake-clips li[data-clip]")))
    seconds = d.execute_async_script("""
        const done = arguments[arguments.length - 1], a = document.querySelector('#wake-clips audio');
        a.addEventListener('loadedmetadata', () => done(a.duration)); a.addEventListener('error', () => done(-1)); a.load();""")
    assert 4.0 <= seconds <= 8.0, seconds
    item.find_element(By.XPATH, ".//button[text()='fine']").click()
    wait(d).until(ec.text_to_be_present_in_element((By.ID, "notice"), "Marked fine"))
    d.execute_script("document.getElementById('wake-review').scrollIntoView()")
    d.save_screenshot(str(tmp_path / "privacy.png"))
    counts = overview_counts(http, base, "porch-satellite")
    assert (counts["false_wake"], counts["fine"]) == (0, 1)
    d.get(base + "/")
    row = wait(d).until(ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-device='porch-satellite']")))
    assert row.find_element(By.CSS_SELECTOR, ".false-wake").text == "0"
    d.save_screenshot(str(tmp_path / "overview.png"))
