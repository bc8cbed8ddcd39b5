"""Mycroft's device API, driven by a real Mycroft/OpenVoiceOS client from PyPI
(ovos-backend-client's PersonalBackend) and by plain requests for the bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

import pytest
import requests

from appliance.audio.pcm import wav_bytes
from conftest import word_error_rate
from devices_kit import pair_device

COMMAND = "What time is it in London"


@pytest.fixture(autouse=True)
def fresh_rate_limits(hearth):
    hearth.service.devices.pairing.limiter.reset()


@pytest.fixture
def only_loopback(monkeypatch):
    """Fails the test if anything tries to reach beyond this machine (the client must not phone home)."""
    tried = []
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            tried.append(address)
            raise OSError(f"test: no network beyond loopback ({address})")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield tried
    assert tried == [], f"the client tried to reach {tried}"


@pytest.fixture
def ovos(hearth, tmp_path, monkeypatch, only_loopback):
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    from ovos_backend_client.backends.personal import PersonalBackend
    return PersonalBackend(url=hearth.web_url, identity_file=str(tmp_path / "identity2.json"))


def flac(wav, tmp_path) -> bytes:
    src, out = tmp_path / "in.wav", tmp_path / "out.flac"
    src.write_bytes(wav_bytes(wav.pcm, wav.format.rate))
    subprocess.run(["sox", str(src), str(out)], check=True)
    return out.read_bytes()


def test_ovos_client_pairs_after_confirmation_and_uses_the_api(hearth, ovos, speech, tmp_path):
    from ovos_backend_client.identity import IdentityManager
    from requests.exceptions import HTTPError

    devices = hearth.service.devices
    state = str(uuid.uuid4())
    data = ovos.device_get_code(state)
    assert len(data["code"]) == 6 and data["token"]
    with pytest.raises(HTTPError):                          # nobody confirmed yet: nothing granted
        ovos.device_activate(state, data["token"])
    device = devices.confirm(data["code"], name="Living room Mark II")
    login = ovos.device_activate(state, data["token"], core_version="0.0.8", platform="mark_2")
    assert login["uuid"] == device.id and login["accessToken"] and login["refreshToken"]
    assert login["mqtt"]["username"] == device.id and login["mqtt"]["password"]
    IdentityManager.save(login)
    assert ovos.uuid == device.id

    info = ovos.device_get()
    assert info["uuid"] == device.id and info["name"] == "Living room Mark II" and info["platform"] == "mark_2"
    ovos.device_update_version(core_version="0.1.0", platform="mark_2")
    assert devices.get(device.id).firmware == "0.1.0"

    settings = ovos.device_get_settings()
    assert settings["systemUnit"] == "metric" and settings["lang"] == hearth.settings.stt.language
    url = f"{hearth.web_url}/v1/device/{device.id}/setting"
    first = ovos.get(url)
    etag = first.headers["ETag"]
    assert ovos.get(url, headers={"If-None-Match": etag}).status_code == 304
    devices.update_settings(device.id, units="imperial", location={"name": "London", "latitude": 51.5,
                                                                   "longitude": -0.12, "timezone": "Europe/London"})
    changed = ovos.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["systemUnit"] == "imperial"
    location = ovos.device_get_location()
    assert location["city"]["name"] == "London" and location["timezone"]["code"] == "Europe/London"

    ovos.device_upload_skill_metadata({"skill_gid": "timer|main", "skillMetadata": {"sections": []}})
    assert [s["skill_gid"] for s in ovos.device_get_skill_settings()] == ["timer|main"]

    transcripts = ovos.stt_get(flac(speech(COMMAND), tmp_path), "en-us", 1)
    assert isinstance(transcripts, list) and len(transcripts) == 1
    assert word_error_rate(COMMAND, transcripts[0]) <= 0.3, transcripts

    # OVOS refreshes by sending its access token to /v1/auth/token. (ovos-backend-client 1.0.1's own
    # refresh_token() fails before it sends anything: it calls .get() on its DeviceIdentity.)
    old_access = ovos.access_token
    fresh = requests.get(f"{hearth.web_url}/v1/auth/token", headers=ovos.headers)
    assert fresh.status_code == 200
    IdentityManager.save(fresh.json())
    assert ovos.access_token != old_access and ovos.uuid == device.id
    assert requests.get(url, headers={"Authorization": f"Bearer {old_access}"}).status_code == 401
    assert ovos.device_get()["uuid"] == device.id


def error_of(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["message"]
    return body["error"]


def test_pairing_bad_input(hearth):
    url = hearth.web_url
    before = hearth.service.store.db["devices_devices"].count
    assert error_of(requests.post(f"{url}/v1/device/activate", data=b"{not json"), 400) == "bad_json"
    assert error_of(requests.post(f"{url}/v1/device/activate", json=["a", "list"]), 400) == "bad_json"
    assert error_of(requests.post(f"{url}/v1/device/activate", data=b"x" * 100_000), 413) == "too_large"
    assert error_of(requests.post(f"{url}/v1/device/activate", json={"state": "s", "token": "forged"}), 401) == "bad_token"
    code = requests.get(f"{url}/v1/device/code", params={"state": "s1"}).json()
    hearth.service.devices.confirm(code["code"])
    good = {"state": "s1", "token": code["token"]}
    assert error_of(requests.post(f"{url}/v1/device/activate", json={**good, "state": "s2"}), 401) == "bad_token"
    assert requests.post(f"{url}/v1/device/activate", json=good).status_code == 200
    assert error_of(requests.post(f"{url}/v1/device/activate", json=good), 404) == "bad_code"     # replayed
    assert error_of(requests.get(f"{url}/v1/device/code", params={"state": "s", "type": "Bad Type!"}), 400) == "bad_setting"
    assert hearth.service.store.db["devices_devices"].count == before + 1


def test_code_and_activate_calls_are_rate_limited(hearth):
    url = hearth.web_url
    limit = hearth.settings.devices.code_rate_per_min
    answers = [requests.get(f"{url}/v1/device/code", params={"state": "x"}).status_code for _ in range(limit + 1)]
    assert answers[:limit] == [200] * limit
    assert answers[-1] == 429
    for _ in range(limit):
        requests.post(f"{url}/v1/device/activate", json={"state": "x", "token": "guess"})
    assert error_of(requests.post(f"{url}/v1/device/activate", json={"state": "x", "token": "guess"}), 429) == "rate_limited"


def test_tokens_reach_only_their_own_device(hearth):
    url = hearth.web_url
    a, b = pair_device(hearth, "A"), pair_device(hearth, "B")
    auth_a = {"Authorization": f"Bearer {a.access}"}
    assert requests.get(f"{url}/v1/device/{a.id}", headers=auth_a).status_code == 200
    assert error_of(requests.get(f"{url}/v1/device/{b.id}/setting", headers=auth_a), 403) == "forbidden"
    assert error_of(requests.get(f"{url}/v1/device/{a.id}/setting"), 401) == "bad_token"
    assert error_of(requests.get(f"{url}/v1/device/{a.id}/setting", headers={"Authorization": "Bearer forged"}), 401) == "bad_token"
    assert error_of(requests.patch(f"{url}/v1/device/{a.id}", headers=auth_a, data=b"[1,"), 400) == "bad_json"
    assert error_of(requests.put(f"{url}/v1/device/{a.id}/settingsMeta", headers=auth_a, json={"no": "gid"}), 400) == "bad_setting"
    assert hearth.service.store.db["devices_skills"].count_where("device_id = ?", [a.id]) == 0
    hearth.service.devices.revoke(b.id)
    assert error_of(requests.get(f"{url}/v1/device/{b.id}", headers={"Authorization": f"Bearer {b.access}"}), 401) == "bad_token"
    # the refresh token: single use
    first = requests.get(f"{url}/v1/auth/token", headers={"Authorization": f"Bearer {a.refresh}"})
    assert first.status_code == 200 and first.json()["uuid"] == a.id
    assert error_of(requests.get(f"{url}/v1/auth/token", headers={"Authorization": f"Bearer {a.refresh}"}), 401) == "bad_token"


def test_stt_refuses_wrong_audio(hearth, tmp_path, speech):
    url = hearth.web_url
    dev = pair_device(hearth)
    auth = {"Authorization": f"Bearer {dev.access}", "Content-Type": "audio/x-flac"}
    before = hearth.service.decoder.decodes
    assert error_of(requests.post(f"{url}/v1/stt", headers=auth, data=b""), 400) == "bad_audio"
    assert error_of(requests.post(f"{url}/v1/stt", headers=auth, data=os.urandom(5000)), 400) == "bad_audio"
    assert error_of(requests.post(f"{url}/v1/stt", headers=auth, data=b"fLaC" + os.urandom(3000)), 400) == "bad_audio"
    mp3 = tmp_path / "x.aiff"
    subprocess.run(["sox", "-n", "-r", "16000", str(mp3), "trim", "0", "0.5"], check=True)
    assert error_of(requests.post(f"{url}/v1/stt", headers=auth, data=mp3.read_bytes()), 415) == "unsupported_audio"
    too_long = speech(COMMAND, pad_ms=int(hearth.settings.limits.max_session_s * 1000) + 500)
    assert error_of(requests.post(f"{url}/v1/stt", headers=auth, data=flac(too_long, tmp_path)), 413) == "too_long"
    assert error_of(requests.post(f"{url}/v1/stt", data=flac(speech(COMMAND), tmp_path)), 401) == "bad_token"
    assert hearth.service.decoder.decodes == before           # nothing reached the engine
