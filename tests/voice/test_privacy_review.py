"""What Hearth heard (issue 26): review, correct, allow, export as a dataset, delete one; and a word
a correction offered, accepted onto the household's list, heard right the next time. A Hearth of its
own with real engines (tiny.en), utterances stored by speaking to it through the broker, the page's
JSON API over real HTTP. The browser flow: tests/webpage/test_privacy_browser.py."""

from __future__ import annotations

import csv
import io
import json
import time
import wave
import zipfile
from datetime import date

import pytest
import requests

from appliance.commands import client
from appliance.commands.client import DeviceLink
from appliance.datasets.checks import Limits
from appliance.datasets.importer import Datasets
from appliance.voice import dataset
from appliance.voice.review import (MAX_CORRECTION_CHARS, NotFound, Review, ReviewError, check_correction,
                                    offered_words)
from devices_kit import pair_device
from voices import in_room, quiet, say, to_wav
from web_support import admin_password, sign_in, start_web_hearth

U = "/api/privacy/utterances"


# --- the pure parts (no Hearth) ------------------------------------------------------------------

def test_formula_like_cells_are_neutralised_and_plain_ones_kept():
    for cell in ("=cmd|' /C calc'!A0", "+1", "-2 degrees", "@SUM(A1)", "\tx", "\rx"):
        assert dataset.neutralise(cell) == "'" + cell
    for cell in ("turn on the light", "", "a=b", "50%", "'quoted"):       # the positive control
        assert dataset.neutralise(cell) == cell
    assert dataset.neutralise(None) == "" and dataset.neutralise(1.5) == "1.5"


def test_a_correction_offers_the_words_hearth_did_not_know():
    assert offered_words("Remind I am about the dentist.", "Remind Niamh about the dentist.", []) == ["Niamh"]
    assert offered_words("Check the wheel spump now", "Check the bilge pump now.", []) == ["bilge pump"]
    assert offered_words("ask for aid to walk ramble.", "Ask Freya to walk Bramble.", []) == ["Freya", "Bramble"]
    # nothing new, only common words, or already on the list: nothing offered
    assert offered_words("Turn on the light.", "turn on the light", []) == []
    assert offered_words("set a timer", "set the timer", []) == []
    assert offered_words("Remind I am about the dentist.", "Remind Niamh about the dentist.", ["niamh"]) == []


def test_a_correction_is_capped_and_one_line():
    assert check_correction("  Remind   Niamh\n about it ") == "Remind Niamh about it"
    assert len(check_correction("x" * MAX_CORRECTION_CHARS)) == MAX_CORRECTION_CHARS       # the limit itself is fine
    with pytest.raises(ReviewError, match=f"at most {MAX_CORRECTION_CHARS} characters") as err:
        check_correction("x" * 100_000)
    assert err.value.code == "too_long"
    with pytest.raises(ReviewError):
        check_correction("bell\x07")
    with pytest.raises(ReviewError):
        check_correction(["not", "text"])


def test_an_id_outside_the_store_is_never_a_path(tmp_path):
    from appliance.state.config import PrivacySettings
    from appliance.voice.utterances import UtteranceStore
    store = UtteranceStore(tmp_path / "utterances", lambda: PrivacySettings(store_utterances=True))
    (tmp_path / "secret.json").write_text("{}")
    day = date.today().isoformat()
    folder = tmp_path / "utterances" / day
    folder.mkdir(parents=True)
    (folder / "101010-000001-dev.json").write_text(json.dumps({"text": "hello", "device": "dev"}))
    review = Review(store)
    assert review.get(f"{day}/101010-000001-dev")["text"] == "hello"         # the positive control
    for uid in ("../secret", f"{day}/../../secret", f"{day}/.101010-000001-dev.json.tmp1", "..%2Fsecret",
                f"{day}/101010-000001-dev/../../secret", "", "/etc/passwd", f"{day}/101010-000002-dev"):
        with pytest.raises(NotFound):
            review.path(uid)


# --- the service ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("review"), privacy={"store_utterances": True})
    yield h
    h.stop()


@pytest.fixture(scope="module")
def http(web):
    session, _ = sign_in(web.web_url, admin_password(web))
    return session


def spoken(hearth, text: str, seed: int, voice: str = "piper"):
    return to_wav(in_room([quiet(0.3), say(hearth, voice, text), quiet(0.8)], seed=seed))


def wait_stored(http, base: str, count: int) -> list[dict]:
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = http.get(f"{base}{U}").json()["utterances"]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} utterances stored: {rows}")


def wait_for(http, base: str, text: str) -> dict:
    deadline = time.time() + 10
    while time.time() < deadline:
        for row in http.get(f"{base}{U}").json()["utterances"]:
            if row["text"] == text:
                return row
        time.sleep(0.1)
    raise AssertionError(f"no stored utterance says {text!r}")


def read_export(content: bytes) -> tuple[list[dict], dict[str, wave.Wave_read]]:
    zf = zipfile.ZipFile(io.BytesIO(content))
    rows = list(csv.DictReader(io.StringIO(zf.read(f"{dataset.FOLDER}/metadata.csv").decode("utf-8"), newline="")))
    wavs = {n.rsplit("/", 1)[1]: wave.open(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".wav")}
    return rows, wavs


@pytest.mark.own_hearth
def test_review_correct_allow_export_and_delete_one(web, http, tmp_path):
    base = web.web_url
    kitchen = pair_device(web, "Kitchen speaker", device_type="satellite", room="Kitchen")
    texts = ["Turn off the hall light.", "Remind Niamh about the dentist.", "Set a timer for ten minutes."]
    with DeviceLink(kitchen.credentials) as link:
        heard = [client.transcribe(link, spoken(web, t, i)).final.text for i, t in enumerate(texts[:2])]
    with DeviceLink(web.credentials("review-guest")) as link:      # a login that is no paired device
        heard.append(client.transcribe(link, spoken(web, texts[2], 2)).final.text)
    rows = wait_stored(http, base, 3)
    assert [r["text"] for r in rows] == heard[::-1]        # newest first
    guest, second, first = rows
    assert (first["device_name"], first["room"], first["device_type"]) == ("Kitchen speaker", "Kitchen", "satellite")
    assert (guest["device_name"], guest["room"], guest["device_type"]) == ("review-guest", "", "")
    assert first["engine"] == "faster-whisper" and "tiny" in first["model"] and first["language"] == "en"
    assert all(r["state"] == "unreviewed" and r["consent"] is None for r in rows)

    # filters: device, day, state (and a bad one refused with the reason)
    listing = lambda **q: http.get(f"{base}{U}", params=q).json()
    assert [r["id"] for r in listing(device=kitchen.id)["utterances"]] == [second["id"], first["id"]]
    assert listing(day=date.today().isoformat())["total"] == 3 and listing(day="2001-01-01")["total"] == 0
    assert listing(state="unreviewed")["total"] == 3 and listing(state="right")["total"] == 0
    bad = http.get(f"{base}{U}", params={"state": "maybe"})
    assert bad.status_code == 422 and "state is one of" in bad.json()["errors"]["state"]
    assert listing(limit=1, offset=1)["utterances"][0]["id"] == second["id"]

    # the audio: a signed-in route, the WAV the engine heard, with Range for the browser's player
    audio = http.get(f"{base}{U}/{first['id']}/audio")
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(audio.content)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        assert abs(w.getnframes() / 16000 - first["audio_s"]) < 0.01
    part = http.get(f"{base}{U}/{first['id']}/audio", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == audio.content[:100]
    assert requests.get(f"{base}{U}/{first['id']}/audio").status_code == 401        # not signed in
    for uid in (f"{date.today()}/..%2F..%2Fhearth.db", "..%2F..%2Fsecrets/admin.json", f"{date.today()}/nothing"):
        assert http.get(f"{base}{U}/{uid}/audio").status_code in (404,), uid

    # a 100 kB correction is refused with the limit, and nothing changes
    huge = http.post(f"{base}{U}/{second['id']}/review", json={"state": "wrong", "corrected": "x" * 100_000})
    assert huge.status_code == 422, huge.text
    assert huge.json()["error"] == "too_long" and f"at most {MAX_CORRECTION_CHARS} characters" in huge.json()["message"]
    assert listing(state="unreviewed")["total"] == 3
    # consent needs a review first
    early = http.post(f"{base}{U}/{first['id']}/consent", json={"allow": True})
    assert early.status_code == 422 and early.json()["error"] == "not_reviewed"

    # mark one right, correct another (a cell a spreadsheet would run, too), leave the third
    right = http.post(f"{base}{U}/{first['id']}/review", json={"state": "right"}).json()["utterance"]
    assert right["state"] == "right" and right["reviewed_at"]
    fixed = http.post(f"{base}{U}/{second['id']}/review", json={"corrected": "=Remind Niamh about the dentist."})
    assert fixed.status_code == 200, fixed.text
    fixed = fixed.json()["utterance"]
    assert fixed["state"] == "wrong" and fixed["corrected"] == "=Remind Niamh about the dentist."
    assert listing(state="right")["total"] == 1 and listing(state="wrong")["total"] == 1
    for row in (first, second):
        allowed = http.post(f"{base}{U}/{row['id']}/consent", json={"allow": True}).json()["utterance"]
        assert allowed["consent"]["by"] == "admin" and allowed["consent"]["at"].endswith("Z")
        assert allowed["consent"]["from"] == "127.0.0.1"

    # the export: exactly the reviewed, allowed rows, each with its audio
    export = http.get(f"{base}/api/privacy/export")
    assert export.status_code == 200 and export.headers["Content-Type"] == "application/zip"
    assert "hearth-dataset-" in export.headers["Content-Disposition"]
    meta, wavs = read_export(export.content)
    assert list(meta[0]) == list(dataset.COLUMNS)
    assert [m["transcript"] for m in meta] == [first["text"], second["text"]]
    assert [m["state"] for m in meta] == ["right", "wrong"]
    assert meta[1]["corrected_transcript"] == "'=Remind Niamh about the dentist."      # neutralised
    assert all(m["device_type"] == "satellite" and m["language"] == "en" and m["consent_by"] == "admin"
               and m["consent_at"] for m in meta)
    assert sorted(wavs) == sorted(m["file_name"] for m in meta)
    for m in meta:
        w = wavs[m["file_name"]]
        assert w.getframerate() == 16000 and abs(w.getnframes() / 16000 - float(m["duration_s"])) < 0.01
    assert kitchen.id not in export.content.decode("latin-1")         # the device's id stays on the box
    # another household's Hearth imports it as it is (appliance/datasets/): SHA256SUMS matches every file
    exported = tmp_path / "hearth-dataset.zip"
    exported.write_bytes(export.content)
    imported = Datasets(tmp_path / "datasets", lambda: Limits()).import_path(exported, "from-a-neighbour")
    assert imported["rows"] == 2, imported

    # withdrawn: out of the next export; the unreviewed third never was in it
    http.post(f"{base}{U}/{first['id']}/consent", json={"allow": False})
    meta, _ = read_export(http.get(f"{base}/api/privacy/export").content)
    assert [m["transcript"] for m in meta] == [second["text"]]

    # one click deletes an utterance everywhere: audio, text, review, the words it offered
    assert [o["word"] for o in http.get(f"{base}/api/voice").json()["offers"]] == fixed["offered"]
    folder = web.settings.data_dir / "utterances" / second["day"]
    stem = second["id"].split("/")[1]
    assert (folder / f"{stem}.wav").exists()
    gone = http.post(f"{base}{U}/{second['id']}/delete")
    assert gone.status_code == 200 and gone.json()["deleted"] == second["id"]
    assert not (folder / f"{stem}.wav").exists() and not (folder / f"{stem}.json").exists()
    assert http.get(f"{base}{U}/{second['id']}/audio").status_code == 404
    assert http.post(f"{base}{U}/{second['id']}/delete").status_code == 404
    assert [r["id"] for r in listing()["utterances"]] == [guest["id"], first["id"]]      # the others stay
    assert http.get(f"{base}/api/voice").json()["offers"] == []
    meta, wavs = read_export(http.get(f"{base}/api/privacy/export").content)
    assert meta == [] and wavs == {}

    # the page shows the list, the filters and the export (and works as plain forms)
    page = http.get(f"{base}/privacy", params={"device": kitchen.id})
    assert page.status_code == 200 and "What Hearth heard" in page.text
    assert f'src="{U}/{first["id"]}/audio"' in page.text and guest["id"] not in page.text
    plain = http.post(f"{base}{U}/{guest['id']}/review", headers={"X-CSRF-Token": None},
                      data={"csrf": http.headers["X-CSRF-Token"], "state": "wrong", "corrected": "x" * 100_000},
                      allow_redirects=False)
    assert plain.status_code == 422 and f"at most {MAX_CORRECTION_CHARS} characters" in plain.text


@pytest.mark.own_hearth
def test_a_word_accepted_from_a_correction_is_heard_in_the_next_command(web, http):
    """Real engines: tiny.en hears "Remind Niamh about the dentist." wrong (the positive control that
    the list is needed); the person corrects it, Hearth offers "Niamh", the person adds it on the Voice
    page, and the same audio is heard right in the next command."""
    base = web.web_url
    wav = spoken(web, "Remind Niamh about the dentist.", 5)
    with DeviceLink(web.credentials("words-review")) as link:
        before = client.transcribe(link, wav).final.text
        assert "niamh" not in before.lower(), before
        row = wait_for(http, base, before)
        fixed = http.post(f"{base}{U}/{row['id']}/review", json={"corrected": "Remind Niamh about the dentist."})
        assert fixed.json()["utterance"]["offered"] == ["Niamh"], fixed.text
        voice_page = http.get(f"{base}/voice").text
        assert 'id="offers"' in voice_page and 'data-word="Niamh"' in voice_page
        assert client.transcribe(link, wav).final.text == before           # offered is not yet accepted
        bad = http.post(f"{base}/api/voice/words/accept", json={"word": "x" * 100})
        assert bad.status_code == 422 and "at most 40 characters" in bad.json()["errors"]["word"]
        accepted = http.post(f"{base}/api/voice/words/accept", json={"word": "Niamh"})
        assert accepted.status_code == 200 and "Niamh" in accepted.json()["words"], accepted.text
        after = client.transcribe(link, wav).final.text
    assert "niamh" in after.lower(), (before, after)
    assert http.get(f"{base}/api/voice").json()["offers"] == []
    # dismissing: a second correction's word goes without joining the list
    again = http.post(f"{base}{U}/{row['id']}/review", json={"corrected": "Remind Niamh about the Bramble."}).json()
    assert again["utterance"]["offered"] == ["Bramble"]
    assert http.post(f"{base}/api/voice/words/dismiss", json={"word": "Bramble"}).json()["dismissed"] == 1
    assert http.get(f"{base}/api/voice").json()["offers"] == []
    assert "Bramble" not in web.service.vocabulary.words() and "Niamh" in web.service.vocabulary.words()


@pytest.mark.own_hearth
def test_a_correction_never_leaves_in_a_support_bundle(web, http):
    """The support bundle's redaction knows a person's corrections as it knows the transcripts."""
    from appliance.support.redact import known_secrets
    row = http.get(f"{web.web_url}{U}").json()["utterances"][0]
    said = "Remind Oisin to water the geraniums by the shed."
    assert http.post(f"{web.web_url}{U}/{row['id']}/review", json={"corrected": said}).status_code == 200
    secrets = known_secrets(web.settings)
    line = f"log: heard {row['text']} / {said}".encode()
    cleaned = secrets.redact(line)
    assert said.encode() not in cleaned and b"STORED_UTTERANCE_CORRECTION" in cleaned, cleaned
    assert row["text"].encode() not in cleaned            # the positive control: the transcript, as before
