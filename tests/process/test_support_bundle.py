"""The support bundle (`hearth support bundle` and the System page's button) against a running
Hearth with a paired device, TLS keys, a metrics token and one stored utterance: it holds what it
promises (the device, versions, health, a log line) and none of the secrets, searched in every
member's bytes, also inside anything compressed inside it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import tarfile
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

from appliance.state import config

from appliance.process import control
from appliance.audio.pcm import Wav
from appliance.commands.client import DeviceLink, transcribe
from appliance.support import bundle
from appliance.support.redact import SecretInBundle, known_secrets
from conftest import Hearth, free_port, make_settings
from devices_kit import pair_device
from mqtt.messages import AudioFormat
from web_support import admin_password, sign_in

pytestmark = pytest.mark.own_hearth

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-" + uuid.uuid4().hex
SAID = "Please turn on the porch light."


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("support") / "data", broker={"tls_port": free_port()},
                             web={"metrics_token": METRICS_TOKEN}, privacy={"store_utterances": True})
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "hearth.toml").write_text(config.to_toml(settings))   # as `hearth run` would read it
    h = Hearth(settings).start()
    paired = pair_device(h, "Porch", device_type="satellite")
    pcm = b"".join(h.service.speaker.stream(SAID))
    with DeviceLink(paired.credentials) as link:
        heard = transcribe(link, Wav(pcm, AudioFormat(h.service.voices.info(None).rate, 2, 1)))
    deadline = time.monotonic() + 10
    while not list((settings.data_dir / "utterances").glob("*/*.wav")) and time.monotonic() < deadline:
        time.sleep(0.05)
    marker = f"support-marker-{uuid.uuid4().hex}"
    logging.getLogger("hearth.test").warning("%s: a line the bundle must carry", marker)
    yield h, paired, heard.final.text, marker
    h.stop()


def secrets_of(h: Hearth, paired, text: str) -> dict[str, bytes]:
    """Every secret the box holds, gathered here independently of the code under test."""
    data = h.settings.data_dir
    found: dict[str, bytes] = {}
    admin = json.loads((data / "secrets" / "admin.json").read_text())
    for key in ("salt", "hash"):
        found[f"admin {key}"] = admin[key].encode()
        found[f"admin {key} raw"] = base64.b64decode(admin[key])
    for token, kind in ((paired.access, "access"), (paired.refresh, "refresh")):
        found[f"{kind} token"] = token.encode()
        found[f"{kind} token digest"] = hashlib.sha256(token.encode()).hexdigest().encode()
    found["device mqtt password"] = paired.credentials.password.encode()
    row = next(h.service.store.db.query("select password_hash from devices_devices where id = ?", [paired.id]))
    found["device password hash"] = row["password_hash"].encode()
    found["device password hash digest"] = row["password_hash"].split("$")[-1].encode()
    for user, entry in json.loads((data / "secrets" / "accounts.json").read_text()).items():
        found[f"{user} password"] = entry["password"].encode()
        found[f"{user} hash"] = entry["hash"].encode()
    for line in (data / "broker" / "passwd").read_text().splitlines():
        found[f"passwd {line.split(':')[0]}"] = line.split(":", 1)[1].encode()
    keys = sorted((data / "tls").glob("*.key"))
    assert len(keys) == 2, keys                   # the CA's and the broker's
    for key in keys:
        pem = key.read_bytes()
        body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
        found[f"{key.name} base64"] = pem.splitlines()[1]
        found[f"{key.name} der"] = base64.b64decode(body)[-32:]
    found["metrics token"] = METRICS_TOKEN.encode()
    wavs = sorted((data / "utterances").glob("*/*.wav"))
    assert len(wavs) == 1, "one utterance must be stored"
    audio = wavs[0].read_bytes()[44:]
    for i, at in enumerate((len(audio) // 3, len(audio) // 2)):
        found[f"utterance audio {i}"] = audio[at & ~1:(at & ~1) + 32]
    found["utterance text"] = text.encode()
    return found


def members(archive: bytes, depth: int = 0) -> dict[str, bytes]:
    """Every file in the archive by name, and the files inside any archive or gzip it holds."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        for m in tar.getmembers():
            if m.isfile():
                out[m.name] = tar.extractfile(m).read()
    for name, data in list(out.items()):
        if depth < 3 and data[:2] == b"\x1f\x8b":
            try:
                out.update({f"{name}!{k}": v for k, v in members(data, depth + 1).items()})
            except tarfile.TarError:
                out[f"{name}!gunzip"] = gzip.decompress(data)
        if depth < 3 and data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                out.update({f"{name}!{n}": zf.read(n) for n in zf.namelist()})
    return out


def check(archive: bytes, h: Hearth, paired, text: str, live: bool, marker: str = "") -> dict[str, bytes]:
    files = members(archive)
    names = {n.split("/", 1)[1] for n in files}
    assert {"README.txt", "bundle.json", "versions.json", "config.toml", "devices.json", "broker.json",
            "disk.json", "database.json", "firmware.json", "health.json", "logs/hearth.log"} <= names
    get = {n.split("/", 1)[1]: v for n, v in files.items()}
    # positive controls: what the bundle promises is there
    devices = json.loads(get["devices.json"])["devices"]
    assert [d["id"] for d in devices] == [paired.id] and devices[0]["device_type"] == "satellite"
    versions = json.loads(get["versions.json"])
    assert versions["hearth"] and versions["python"].startswith(sys.version.split()[0])
    assert "mosquitto version" in versions["mosquitto"] and versions["packages"]["faster-whisper"]
    broker = json.loads(get["broker.json"])
    assert broker["accounts"] >= 3 and broker["port_open"] is live      # the device, the service, the command
    assert paired.id in json.loads(get["broker.json"])["transports"]        # the broker saw the device log in
    assert json.loads(get["disk.json"])["free_bytes"] > 0
    assert json.loads(get["database.json"])["quick_check"] == ["ok"]
    assert b"metrics_token = \"(set, redacted)\"" in get["config.toml"]
    assert json.loads(get["bundle.json"])["service_running"] is live
    if live:
        assert json.loads(get["health.json"])["health"]["broker"] is True
        assert b"hearth_http_requests_total" in get["metrics.txt"]
        assert marker.encode() in get["logs/hearth.log"]
    else:
        assert b"data directory alone" in get["README.txt"]
    # and none of the secrets, in any member, at any depth
    secrets = secrets_of(h, paired, text)
    leaks = [(what, name) for what, value in secrets.items() for name, data in files.items() if value in data]
    assert not leaks, leaks
    assert not any(b"PRIVATE KEY" in data for data in files.values())
    return get


def hearth_cli(h: Hearth, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "appliance.commands.cli", "--data", str(h.settings.data_dir),
                           "support", "bundle", "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)


def test_the_command_asks_the_running_service_and_no_secret_is_inside(box, tmp_path):
    h, paired, text, marker = box
    done = hearth_cli(h, tmp_path / "b.tar.gz")
    assert done.returncode == 0, done.stderr
    assert "made by the running Hearth" in done.stdout
    check((tmp_path / "b.tar.gz").read_bytes(), h, paired, text, live=True, marker=marker)


def test_the_system_page_button_downloads_it_signed_in_only(box):
    h, paired, text, marker = box
    base = h.web_url
    assert requests.get(base + "/api/system/support-bundle").status_code == 401
    http, _ = sign_in(base, admin_password(h))
    page = http.get(base + "/system")
    assert 'href="/api/system/support-bundle"' in page.text
    reply = http.get(base + "/api/system/support-bundle")
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/gzip"
    assert reply.headers["Cache-Control"] == "no-store" and "attachment" in reply.headers["Content-Disposition"]
    check(reply.content, h, paired, text, live=True, marker=marker)


def test_a_secret_that_reaches_the_log_is_redacted_and_one_that_cannot_be_is_refused(box):
    h, paired, text, _ = box
    leaky = f"leak-{uuid.uuid4().hex}"
    logging.getLogger("hearth.test").warning("a careless line with the metrics token %s and %s", METRICS_TOKEN, leaky)
    http, _ = sign_in(h.web_url, admin_password(h))
    log = check(http.get(h.web_url + "/api/system/support-bundle").content, h, paired, text, live=True)["logs/hearth.log"]
    line = next(line for line in log.splitlines() if leaky.encode() in line)      # the line is there...
    assert b"[REDACTED:CONFIG_WEB_METRICS_TOKEN]" in line                        # ...without the token
    # binary bytes are not redacted: a known secret in them (the device's broker password hash, as
    # the registry holds it) stops the bundle, and the message names the member, never the value
    stored = next(h.service.store.db.query("select password_hash from devices_devices where id = ?", [paired.id]))
    with pytest.raises(SecretInBundle) as refused:
        bundle.pack({"README.txt": "fine", "blob.bin": b"\xff\xfe" + stored["password_hash"].encode()},
                    known_secrets(h.settings))
    assert "blob.bin" in str(refused.value) and stored["password_hash"] not in str(refused.value)


def test_without_a_running_service_the_command_builds_from_the_data_directory(box, tmp_path):
    """Last: it stops the module's Hearth. Then a control socket left by a killed service (kill -9
    leaves it behind), where nothing answers: the command still makes its bundle."""
    h, paired, text, _ = box
    h.stop()
    sock = control.socket_path(h.settings.data_dir)
    assert not sock.exists()
    done = hearth_cli(h, tmp_path / "offline.tar.gz")
    assert done.returncode == 0, done.stderr
    assert "from the data directory alone (no service is running" in done.stdout
    check((tmp_path / "offline.tar.gz").read_bytes(), h, paired, text, live=False)
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(sock))                          # bound, never listening: what a killed service leaves
    left.close()
    done = hearth_cli(h, tmp_path / "stale.tar.gz")
    assert done.returncode == 0 and "no service is running" in done.stdout, done.stdout + done.stderr
    get = check((tmp_path / "stale.tar.gz").read_bytes(), h, paired, text, live=False)
    assert "no service is running" in json.loads(get["bundle.json"])["note"]
