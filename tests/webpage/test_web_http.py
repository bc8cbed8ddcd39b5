"""The web page over real HTTP (waitress + bottle) on a Hearth of its own: sign-in, sessions, CSRF,
validation, speaking, privacy storage, backup/restore, metrics access, devices, documented routes."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
import wave
import zipfile
from datetime import date, timedelta
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
import requests

from appliance.commands import client as device_client
from appliance.commands.client import DeviceLink
from mqtt.client import Credentials
from web.app import metrics_allowed
from web_support import SLOW_VOICE, admin_password, login_form, sign_in, start_web_hearth

pytestmark = pytest.mark.own_hearth

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("web"))
    yield h
    h.stop()


@pytest.fixture(scope="module")
def signed_in(web):
    http, _ = sign_in(web.web_url, admin_password(web))
    return http


def test_pages_and_api_need_a_session_but_health_and_device_api_do_not(web):
    base = web.web_url
    for page in ("/", "/devices", "/voice", "/updates", "/privacy", "/system"):
        r = requests.get(base + page, allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"].startswith("/login?next="), page
    for route in ("/api/overview", "/api/voice", "/api/devices", "/api/system/backup", "/api/privacy/export"):
        r = requests.get(base + route)
        assert r.status_code == 401 and r.json()["error"] == "login_required", route
    assert requests.post(base + "/api/system/restart").status_code == 401
    assert requests.post(base + "/api/voice/speak", json={"text": "hi"}).status_code == 401
    assert requests.get(base + "/health").json()["broker"] is True
    code = requests.get(base + "/v1/device/code", params={"state": uuid.uuid4().hex})
    assert code.status_code == 200 and len(code.json()["code"]) == 6


def test_password_is_stored_only_as_a_scrypt_hash(web):
    password = admin_password(web)
    stored = (web.settings.data_dir / "secrets" / "admin.json").read_text()
    assert password not in stored and json.loads(stored)["alg"] == "scrypt"
    assert oct((web.settings.data_dir / "secrets" / "admin.json").stat().st_mode & 0o777) == "0o600"


def test_login_sets_a_strict_httponly_cookie_and_wrong_password_is_refused(web):
    base = web.web_url
    http = requests.Session()
    token = login_form(http, base)
    wrong = http.post(f"{base}/login", data={"csrf": token, "password": "nope"}, allow_redirects=False)
    assert wrong.status_code == 401 and "not right" in wrong.text
    token = login_form(http, base)
    ok = http.post(f"{base}/login", data={"csrf": token, "password": admin_password(web), "next": "/voice"},
                   allow_redirects=False)
    assert ok.status_code == 303 and ok.headers["Location"].endswith("/voice")
    cookie = ok.headers["Set-Cookie"]
    assert "hearth_session=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Secure" not in cookie                      # plain HTTP here; Secure when served over TLS
    assert http.get(f"{base}/api/overview").status_code == 200


def test_login_form_needs_its_csrf_token_and_next_is_never_off_site(web):
    base = web.web_url
    http = requests.Session()
    login_form(http, base)
    r = http.post(f"{base}/login", data={"password": admin_password(web)}, allow_redirects=False)
    assert r.status_code == 403
    token = login_form(http, base)
    r = http.post(f"{base}/login", data={"csrf": token, "password": admin_password(web), "next": "//evil.example/"},
                  allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].rstrip("/").endswith(base.split("//")[1])


def test_state_changing_calls_without_the_csrf_token_are_refused(web, signed_in):
    base = web.web_url
    before = web.service.settings.endpoint.silence_ms
    bare = requests.Session()
    bare.cookies.update(signed_in.cookies)               # signed in, but no token
    r = bare.post(f"{base}/api/voice", json={"endpoint.silence_ms": before + 100})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = bare.post(f"{base}/api/voice", json={"endpoint.silence_ms": before + 100}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = bare.post(f"{base}/api/voice", data={"endpoint.silence_ms": str(before + 100), "csrf": "forged"})
    assert r.status_code == 403
    assert web.service.settings.endpoint.silence_ms == before


def test_bad_values_change_nothing_and_say_which_field(web, signed_in):
    base = web.web_url
    config_file = web.settings.data_dir / "hearth.toml"
    before_file = config_file.read_text() if config_file.exists() else None
    before = web.service.settings
    r = signed_in.post(f"{base}/api/voice", json={"endpoint.silence_ms": 20, "tts.voice": SLOW_VOICE,
                                                  "wake.sensitivity": "loud", "stt.language": "xx"})
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert set(errors) == {"endpoint.silence_ms", "wake.sensitivity", "stt.language"}
    assert "100" in errors["endpoint.silence_ms"] and "number" in errors["wake.sensitivity"]
    assert web.service.settings == before and web.service.voices.default == before.tts.voice
    assert (config_file.read_text() if config_file.exists() else None) == before_file


def test_plain_form_post_shows_errors_on_the_page(web, signed_in):
    base = web.web_url
    csrf = signed_in.headers["X-CSRF-Token"]
    plain = requests.Session()
    plain.cookies.update(signed_in.cookies)
    page = plain.post(f"{base}/api/voice", data={"csrf": csrf, "endpoint.silence_ms": "abc"}, allow_redirects=False)
    assert page.status_code == 422 and "text/html" in page.headers["Content-Type"]
    assert 'data-error-for="endpoint.silence_ms">must be a whole number' in page.text
    assert "Traceback" not in page.text
    ok = plain.post(f"{base}/api/voice", data={"csrf": csrf, "endpoint.silence_ms": "350"}, allow_redirects=False)
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/voice?notice=")
    assert web.service.settings.endpoint.silence_ms == 350


def test_voice_change_applies_live_and_is_written_to_the_config_file(web, signed_in):
    base = web.web_url
    r = signed_in.post(f"{base}/api/voice", json={"tts.voice": SLOW_VOICE, "endpoint.silence_ms": 450,
                                                  "wake.sensitivity": 0.7})
    assert r.status_code == 200, r.text
    assert r.json()["restart_needed"] == []
    s = web.service
    assert s.settings.tts.voice == SLOW_VOICE and s.voices.default == SLOW_VOICE
    assert s.sessions.settings.endpoint.silence_ms == 450 and s.settings.wake.sensitivity == 0.7
    text = (web.settings.data_dir / "hearth.toml").read_text()
    assert f'voice = "{SLOW_VOICE}"' in text and "silence_ms = 450" in text
    from appliance.state import config
    assert config.load(data_dir=web.settings.data_dir).tts.voice == SLOW_VOICE
    r = signed_in.post(f"{base}/api/voice", json={"stt.engine": "vosk"})
    assert r.json()["restart_needed"] == ["stt.engine"]
    signed_in.post(f"{base}/api/voice", json={"stt.engine": "faster-whisper", "tts.voice": "en_US-joe-medium",
                                              "endpoint.silence_ms": 300})
    logs = signed_in.get(f"{base}/api/system/logs").json()["lines"]
    assert any("settings changed on the web page" in line["text"] for line in logs)


def _wav(data: bytes) -> tuple[int, float]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


def test_speak_returns_a_wav_in_the_chosen_voice(web, signed_in):
    base = web.web_url
    normal = signed_in.post(f"{base}/api/voice/speak", json={"text": "The kettle has boiled."})
    assert normal.status_code == 200 and normal.headers["Content-Type"] == "audio/wav"
    rate, seconds = _wav(normal.content)
    assert rate == 22050 and 0.8 < seconds < 5
    slow = signed_in.post(f"{base}/api/voice/speak", json={"text": "The kettle has boiled.", "voice": SLOW_VOICE})
    assert _wav(slow.content)[1] > seconds * 1.2
    empty = signed_in.post(f"{base}/api/voice/speak", json={"text": "  "})
    assert empty.status_code == 422 and empty.json()["errors"]["text"]
    unknown = signed_in.post(f"{base}/api/voice/speak", json={"text": "hi", "voice": "nobody"})
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_voice"
    broken = signed_in.post(f"{base}/api/voice/speak", data=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "JSON" in broken.json()["message"]


def test_utterances_are_stored_only_when_opted_in_then_exported_and_deleted(web, signed_in, speech):
    base = web.web_url
    creds = web.credentials(f"privacy-{uuid.uuid4().hex[:6]}")
    assert signed_in.get(f"{base}/api/privacy").json()["store_utterances"] is False
    with DeviceLink(creds) as link:
        device_client.transcribe(link, speech("Turn off the hall light."))
    assert signed_in.get(f"{base}/api/privacy").json()["stored"]["utterances"] == 0
    bad = signed_in.post(f"{base}/api/privacy", json={"store_utterances": True, "retention_days": 0})
    assert bad.status_code == 422 and "retention_days" in bad.json()["errors"]
    assert web.service.settings.privacy.store_utterances is False
    ok = signed_in.post(f"{base}/api/privacy", json={"store_utterances": True, "retention_days": 7})
    assert ok.status_code == 200
    with DeviceLink(creds) as link:
        heard = device_client.transcribe(link, speech("Turn off the hall light."))
    deadline = time.time() + 5
    while signed_in.get(f"{base}/api/privacy").json()["stored"]["utterances"] == 0 and time.time() < deadline:
        time.sleep(0.1)
    state = signed_in.get(f"{base}/api/privacy").json()
    assert state["stored"]["utterances"] == 1 and state["recent"][0]["text"] == heard.final.text
    # the export holds only what a person reviewed and allowed (appliance/voice/review.py)
    export = signed_in.get(f"{base}/api/privacy/export")
    assert [n for n in zipfile.ZipFile(io.BytesIO(export.content)).namelist() if n.endswith(".wav")] == []
    uid = signed_in.get(f"{base}/api/privacy/utterances").json()["utterances"][0]["id"]
    assert signed_in.post(f"{base}/api/privacy/utterances/{uid}/review", json={"state": "right"}).status_code == 200
    assert signed_in.post(f"{base}/api/privacy/utterances/{uid}/consent", json={"allow": True}).status_code == 200
    export = signed_in.get(f"{base}/api/privacy/export")
    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert any(n.endswith(".wav") for n in names) and any(n.endswith("metadata.csv") for n in names)
    wav_name = next(n for n in names if n.endswith(".wav"))
    assert _wav(zipfile.ZipFile(io.BytesIO(export.content)).read(wav_name))[1] > 1.0
    # the retention sweep removes day folders older than retention_days
    old = web.settings.data_dir / "utterances" / (date.today() - timedelta(days=30)).isoformat()
    old.mkdir(parents=True)
    (old / "x.json").write_text("{}")
    assert web.service.utterances.sweep() == 1 and not old.exists()
    assert signed_in.post(f"{base}/api/privacy/delete").status_code == 200
    assert signed_in.get(f"{base}/api/privacy").json()["stored"]["utterances"] == 0
    signed_in.post(f"{base}/api/privacy", json={"store_utterances": False})


def test_backup_restores_config_and_registry_and_wrong_files_are_rejected(web, signed_in):
    base = web.web_url
    backup = signed_in.get(f"{base}/api/system/backup")
    assert backup.status_code == 200 and backup.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(backup.content)) as tar:
        assert {"hearth-backup.json", "hearth.toml", "hearth.db"} <= set(tar.getnames())
    web.service.store.put("web-test.marker", "before")
    saved = signed_in.get(f"{base}/api/system/backup").content
    web.service.store.put("web-test.marker", "after")
    signed_in.post(f"{base}/api/privacy", json={"retention_days": 99})

    def restore(data: bytes, name: str = "backup.tar.gz"):
        return signed_in.post(f"{base}/api/system/restore", files={"backup": (name, data)})

    not_tar = restore(b"hello, this is not a backup", "notes.txt")
    assert not_tar.status_code == 422 and "not a Hearth backup" in not_tar.json()["errors"]["backup"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hearth.toml", "")
    assert restore(buf.getvalue(), "x.zip").status_code == 422
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("hearth.toml")
        tar.addfile(info, io.BytesIO(b""))
    missing = restore(buf.getvalue())
    assert missing.status_code == 422 and "missing" in missing.json()["errors"]["backup"]
    bad_config = _retar(saved, {"hearth.toml": b"[nonsense]\nx = 1\n"})
    r = restore(bad_config)
    assert r.status_code == 422 and "configuration is not valid" in r.json()["errors"]["backup"]
    bad_db = _retar(saved, {"hearth.db": b"SQLite format 3\x00" + b"\x00" * 100})
    assert restore(bad_db).status_code == 422
    assert web.service.store.get("web-test.marker") == "after"            # nothing changed so far
    assert web.service.settings.privacy.retention_days == 99
    assert restore(b"").status_code == 422
    good = restore(saved)
    assert good.status_code == 200, good.text
    assert web.service.store.get("web-test.marker") == "before"
    assert web.service.settings.privacy.retention_days == 7
    assert signed_in.get(f"{base}/api/overview").status_code == 200


def _retar(original: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(original)) as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            data = replace.get(member.name, src.extractfile(member).read())
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_metrics_from_loopback_and_with_the_bearer_token_only(web):
    text = requests.get(web.web_url + "/metrics").text
    for name in ("hearth_http_requests_total{status=", "hearth_stt_queue_depth", "hearth_devices_online",
                 "hearth_uptime_seconds", "hearth_tts_seconds_bucket"):
        assert name in text, name
    assert text.count("# TYPE hearth_http_requests_total counter") == 1
    assert metrics_allowed({"REMOTE_ADDR": "127.0.0.1"}, "")
    assert metrics_allowed({"REMOTE_ADDR": "::1"}, "")
    assert not metrics_allowed({"REMOTE_ADDR": "192.168.1.20"}, "")
    assert not metrics_allowed({"REMOTE_ADDR": "192.168.1.20", "HTTP_AUTHORIZATION": "Bearer "}, "")
    assert not metrics_allowed({"REMOTE_ADDR": "192.168.1.20", "HTTP_AUTHORIZATION": "Bearer wrong"}, "s3cret")
    assert metrics_allowed({"REMOTE_ADDR": "192.168.1.20", "HTTP_AUTHORIZATION": "Bearer s3cret"}, "s3cret")
    assert not metrics_allowed({"REMOTE_ADDR": "192.168.1.20", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}, "")


def _wsgi_get(app, path: str, remote: str, headers: dict | None = None) -> tuple[str, bytes]:
    environ = {"PATH_INFO": path, "REMOTE_ADDR": remote, "REQUEST_METHOD": "GET", **(headers or {})}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], body


def test_metrics_route_from_another_host_needs_the_token(web):
    from appliance.state import live
    app = web.service.web.app
    status, _ = _wsgi_get(app, "/metrics", "192.168.1.20")
    assert status.startswith("401")
    live.apply(web.service, "web", {"metrics_token": "s3cret-token"})
    try:
        status, body = _wsgi_get(app, "/metrics", "192.168.1.20", {"HTTP_AUTHORIZATION": "Bearer s3cret-token"})
        assert status.startswith("200") and b"hearth_uptime_seconds" in body
        status, _ = _wsgi_get(app, "/metrics", "192.168.1.20", {"HTTP_AUTHORIZATION": "Bearer other"})
        assert status.startswith("401")
    finally:
        live.apply(web.service, "web", {"metrics_token": ""})


def test_pairing_rename_move_settings_and_revoke_through_the_api(web, signed_in):
    base = web.web_url
    state = uuid.uuid4().hex
    code = requests.get(f"{base}/v1/device/code", params={"state": state, "name": "Hall speaker"}).json()
    pending = signed_in.get(f"{base}/api/devices").json()["pending"]
    request = next(p for p in pending if p["name"] == "Hall speaker")
    assert request["client_addr"] == "127.0.0.1" and "code" not in request     # the person types the code
    wrong = signed_in.post(f"{base}/api/devices/confirm", json={"code": "ZZZZZZ"})
    assert wrong.status_code == 422 and "ZZZZZZ" in wrong.json()["errors"]["code"]
    ok = signed_in.post(f"{base}/api/devices/confirm", json={"code": code["code"].lower(), "room": "Hall"})
    assert ok.status_code == 200, ok.text
    device_id = ok.json()["device"]["id"]
    activated = requests.post(f"{base}/v1/device/activate", json={"state": state, "token": code["token"]})
    assert activated.status_code == 200
    mqtt = activated.json()["mqtt"]
    with DeviceLink(Credentials("127.0.0.1", mqtt["port"], mqtt["username"], mqtt["password"])) as link:
        assert device_client.say(link, "Paired.").end.chunks >= 1
    r = signed_in.post(f"{base}/api/devices/{device_id}", json={"name": "Porch", "room": "Outside"})
    assert r.status_code == 200 and r.json()["device"]["room"] == "Outside"
    bad = signed_in.post(f"{base}/api/devices/{device_id}", json={"name": ""})
    assert bad.status_code == 422 and bad.json()["errors"][f"{device_id}.name"]
    bad = signed_in.post(f"{base}/api/devices/{device_id}/settings", json={"units": "furlongs"})
    assert bad.status_code == 422
    assert signed_in.get(f"{base}/api/devices/{device_id}/settings").json()["settings"]["units"] == "metric"
    good = signed_in.post(f"{base}/api/devices/{device_id}/settings", json={"units": "imperial", "location.timezone": "Europe/Oslo"})
    assert good.status_code == 200 and good.json()["settings"]["location"]["timezone"] == "Europe/Oslo"
    page = signed_in.get(f"{base}/devices").text
    assert "Porch" in page and "Outside" in page
    assert signed_in.post(f"{base}/api/devices/{device_id}/revoke").status_code == 200
    assert device_id not in [d["id"] for d in signed_in.get(f"{base}/api/devices").json()["devices"]]
    assert signed_in.post(f"{base}/api/devices/{device_id}/revoke").status_code == 422


def test_updates_page_imports_from_a_folder_and_sets_the_manifest_address(web, signed_in, tmp_path):
    from firmware_support import image, release_doc
    base = web.web_url
    assert "No firmware images are cached yet" in signed_in.get(base + "/updates").text
    assert signed_in.post(f"{base}/api/updates/import", json={"folder": "relative/path"}).status_code == 422
    empty = signed_in.post(f"{base}/api/updates/import", json={"folder": str(tmp_path)})
    assert empty.status_code == 422 and "manifests" in empty.json()["errors"]["folder"]
    data = image(16 << 10)
    (tmp_path / "speaker-1.2.0.bin").write_bytes(data)
    (tmp_path / "speaker.json").write_text(json.dumps(release_doc("speaker", "1.2.0", data, "speaker-1.2.0.bin")))
    tampered = image(16 << 10, seed=2)
    (tmp_path / "lamp-0.1.bin").write_bytes(tampered[:-1] + b"x")
    (tmp_path / "lamp.json").write_text(json.dumps(release_doc("lamp", "0.1", tampered, "lamp-0.1.bin")))
    r = signed_in.post(f"{base}/api/updates/import", json={"folder": str(tmp_path)})
    assert r.status_code == 200 and "Imported 1 image(s); 1 rejected" in r.json()["message"]
    state = signed_in.get(f"{base}/api/updates").json()
    speaker = next(t for t in state["types"] if t["device_type"] == "speaker")
    assert [rel["version"] for rel in speaker["releases"]] == ["1.2.0"]
    assert "1.2.0" in signed_in.get(base + "/updates").text
    bad = signed_in.post(f"{base}/api/updates/manifest", json={"manifest_url": "ftp://x"})
    assert bad.status_code == 422 and web.service.settings.firmware.manifest_url == ""
    url = "http://127.0.0.1:9/firmware/{type}/{channel}.json"
    assert signed_in.post(f"{base}/api/updates/manifest", json={"manifest_url": url}).status_code == 200
    assert web.service.firmware.manifest_url("speaker", "stable") == "http://127.0.0.1:9/firmware/speaker/stable.json"
    signed_in.post(f"{base}/api/updates/manifest", json={"manifest_url": ""})


def test_restart_is_refused_where_hearth_was_not_started_by_hearth_run(web, signed_in):
    r = signed_in.post(web.web_url + "/api/system/restart")
    assert r.status_code == 422 and "restart" in r.json()["errors"]


def test_every_route_is_documented(web):
    """Every route of the page and its JSON API is in docs/web.md (the device API and firmware
    downloads are documented by their rooms)."""
    text = (ROOT / "docs" / "web.md").read_text()
    routes = {f"{r.method} {r.rule}" for r in web.service.web.app.routes
              if not r.rule.startswith(("/v1/", "/firmware/"))}
    missing = sorted(r for r in routes if f"`{r}`" not in text)
    assert not missing, f"docs/web.md does not list: {missing}"


def test_a_password_reset_signs_everybody_out_and_login_is_rate_limited(web, signed_in):
    """Last in this module: it changes the password and uses up the sign-in attempts."""
    base = web.web_url
    from appliance.state.admin import AdminPassword
    time.sleep(0.01)
    new = AdminPassword(web.settings.data_dir).reset()
    assert signed_in.get(f"{base}/api/overview").status_code == 401
    fresh, _ = sign_in(base, new)
    assert fresh.get(f"{base}/api/overview").status_code == 200
    http = requests.Session()
    codes = []
    for _ in range(7):
        token = login_form(http, base)
        codes.append(http.post(f"{base}/login", data={"csrf": token, "password": "guess"}).status_code)
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    token = login_form(http, base)
    blocked = http.post(f"{base}/login", data={"csrf": token, "password": new}, allow_redirects=False)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
