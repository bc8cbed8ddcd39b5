"""Hearth updates itself from its own firmware cache: it is the device type `hearth-appliance`.
A release for this box's compatible is fetched once, checked (sha256, then RAUC's signature) and
offered on the System page; one for another architecture is never fetched; one signed by an
unknown key is fetched (its sha256 matches its manifest) but refused, and never installed. The box
follows the release channel (stable/beta) chosen on the System page."""

from __future__ import annotations

import hashlib
import json
import re
import time

import pytest
import requests

from conftest import Hearth, make_settings
from firmware_support import Upstream
from update_support import RaucBox, make_bundle, make_key
from web_support import admin_password, sign_in

pytestmark = pytest.mark.own_hearth

TYPE = "hearth-appliance"


def publish(up: Upstream, channel: str, version: str, data: bytes, compatible: str) -> str:
    name = f"/{TYPE}-{version}.raucb"
    up.files[name] = data
    up.files[f"/{TYPE}/{channel}.json"] = json.dumps({
        "device_type": TYPE, "channel": channel, "version": version, "url": name, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "notes": f"Hearth {version}", "compatible": compatible,
    }).encode()
    return name


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rauc-cache")
    box = RaucBox(root).start()
    up = Upstream()
    settings = make_settings(root / "data", update=box.settings(),
                             firmware={"manifest_url": up.url + "/{type}/{channel}.json", "check_interval_min": 0})
    h = Hearth(settings).start()
    yield box, up, h
    h.stop()
    up.close()
    box.stop()


def wait_installed(http, base: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = http.get(f"{base}/api/system/update").json()["progress"]
        if progress["state"] in ("installed", "failed"):
            return progress
        time.sleep(0.1)
    raise AssertionError(f"no end of the install: {progress}")


def test_a_release_for_this_box_is_fetched_once_verified_offered_and_installed(setup, tmp_path):
    box, up, h = setup
    v2 = make_bundle(tmp_path / "v2.raucb", "2.0.0", box.cert, box.key).read_bytes()
    arm = make_bundle(tmp_path / "arm.raucb", "2.1.0", box.cert, box.key, compatible="hearth-aarch64").read_bytes()
    good_path = publish(up, "stable", "2.0.0", v2, "hearth-x86_64")
    arm_path = publish(up, "beta", "2.1.0", arm, "hearth-aarch64")

    outcomes = {o.channel: o for o in h.service.firmware.check(TYPE)}
    assert outcomes["stable"].state == "cached", outcomes
    assert outcomes["beta"].state == "error" and "is for 'hearth-aarch64', this box is 'hearth-x86_64'" \
        in outcomes["beta"].error
    assert up.gets.get(good_path) == 1 and arm_path not in up.gets    # the other architecture: never fetched
    h.service.firmware.check(TYPE)
    assert up.gets.get(good_path) == 1                                  # fetched once

    http, _ = sign_in(h.web_url, admin_password(h))
    offer = http.get(f"{h.web_url}/api/system/update").json()["offer"]
    assert offer["version"] == "2.0.0" and offer["state"] == "ready" and "signed by" in offer["message"]
    assert "Install update 2.0.0 from the cache" in http.get(f"{h.web_url}/system").text

    running = hashlib.sha256(box.slots["A"].read_bytes()).hexdigest()
    reply = http.post(f"{h.web_url}/api/system/update/cached", json={"version": "1.9.9"})
    assert reply.status_code == 422 and reply.json()["error"] == "no_offer"
    reply = http.post(f"{h.web_url}/api/system/update/cached", json={"version": "2.0.0"})
    assert reply.status_code == 202, reply.text
    progress = wait_installed(http, h.web_url)
    assert progress["state"] == "installed", progress
    doc = http.get(f"{h.web_url}/api/system/update").json()
    assert {s["bootname"]: s["version"] for s in doc["slots"]}["B"] == "2.0.0"
    assert doc["last"]["source"] == "cache" and doc["last"]["result"] == "installed"
    assert doc["offer"]["state"] == "installed"           # not offered again while it waits for the reboot
    assert "Install update 2.0.0 from the cache" not in http.get(f"{h.web_url}/system").text
    assert hashlib.sha256(box.slots["A"].read_bytes()).hexdigest() == running
    assert h.service.firmware.blobs.has(hashlib.sha256(v2).hexdigest())  # the cache keeps it (rollback, other boxes)


def test_a_cached_release_signed_by_an_unknown_key_is_refused_not_installed(setup, tmp_path):
    box, up, h = setup
    cert, key = make_key(tmp_path / "keys", "stranger")
    data = make_bundle(tmp_path / "v3.raucb", "3.0.0", cert, key).read_bytes()
    path = publish(up, "stable", "3.0.0", data, "hearth-x86_64")
    outcomes = {o.channel: o for o in h.service.firmware.check(TYPE)}
    assert outcomes["stable"].state == "cached" and up.gets.get(path) == 1    # sha256 matches its manifest
    http, _ = sign_in(h.web_url, admin_password(h))
    offer = http.get(f"{h.web_url}/api/system/update").json()["offer"]
    assert offer["version"] == "3.0.0" and offer["state"] == "refused"
    assert "signed by a key this box does not trust" in offer["message"]
    slot_b = hashlib.sha256(box.slots["B"].read_bytes()).hexdigest()
    reply = http.post(f"{h.web_url}/api/system/update/cached", json={"version": "3.0.0"})
    assert reply.status_code == 422 and "does not trust" in reply.json()["message"]
    assert hashlib.sha256(box.slots["B"].read_bytes()).hexdigest() == slot_b
    assert "Install update 3.0.0" not in http.get(f"{h.web_url}/system").text


def offered(http, base: str) -> tuple[dict, str]:
    """The update API's offer and the System page's install button text, as a person sees them."""
    offer = http.get(f"{base}/api/system/update").json()["offer"]
    page = http.get(f"{base}/system").text
    button = re.search(r"Install update (\S+) from the cache", page)
    return offer, button.group(1) if button else ""


def test_the_box_follows_the_release_channel_chosen_on_the_system_page(setup, tmp_path):
    """A stable release and a newer beta one in the cache: stable is offered on stable, beta after
    switching to beta, stable again after switching back; the choice is saved in the config file
    and applies at once; a bad channel is refused with its reason and changes nothing."""
    box, up, h = setup
    stable = make_bundle(tmp_path / "v4.raucb", "4.0.0", box.cert, box.key).read_bytes()
    beta = make_bundle(tmp_path / "v41.raucb", "4.1.0", box.cert, box.key).read_bytes()
    publish(up, "stable", "4.0.0", stable, "hearth-x86_64")
    publish(up, "beta", "4.1.0", beta, "hearth-x86_64")
    outcomes = {o.channel: o for o in h.service.firmware.check(TYPE)}
    assert outcomes["stable"].state == "cached" and outcomes["beta"].state == "cached", outcomes
    base = h.web_url
    http, csrf = sign_in(base, admin_password(h))
    config_file = h.service.settings.data_dir / "hearth.toml"

    assert http.get(f"{base}/api/system/update").json()["channel"] == "stable"       # the default
    offer, button = offered(http, base)
    assert (offer["version"], offer["channel"], offer["state"], button) == ("4.0.0", "stable", "ready", "4.0.0")
    assert '<option value="stable" selected>' in http.get(f"{base}/system").text

    reply = http.post(f"{base}/api/system/update/channel", json={"channel": "beta"})
    assert reply.status_code == 200 and reply.json()["channel"] == "beta", reply.text
    assert "follows the beta channel" in reply.json()["message"]
    offer, button = offered(http, base)
    assert (offer["version"], offer["channel"], offer["state"], button) == ("4.1.0", "beta", "ready", "4.1.0")
    assert '<option value="beta" selected>' in http.get(f"{base}/system").text
    assert 'channel = "beta"' in config_file.read_text()                              # saved like every setting
    saved = config_file.read_bytes()

    for bad in ("nightly", "", 7, "beta" * 10_000):
        reply = http.post(f"{base}/api/system/update/channel", json={"channel": bad})
        assert reply.status_code == 422, (str(bad)[:20], reply.status_code, reply.text[:300])
        message = reply.json()["errors"]["channel"]
        assert message == "must be text" if bad == 7 else message.startswith("must be one of stable, beta"), message
        assert len(message) < 100                                                  # the value is not echoed whole
    # the same refusal without JavaScript: the page again, the reason beside the field
    form = requests.Session()
    form.cookies.update(http.cookies)
    page = form.post(f"{base}/api/system/update/channel", data={"csrf": csrf, "channel": "nightly"})
    assert page.status_code == 422 and "must be one of stable, beta, not &#039;nightly&#039;" in page.text, page.text[:500]
    assert config_file.read_bytes() == saved and offered(http, base)[1] == "4.1.0"    # nothing changed

    reply = http.post(f"{base}/api/system/update/channel", json={"channel": "stable"})
    assert reply.status_code == 200 and reply.json()["offer"]["version"] == "4.0.0", reply.text
    offer, button = offered(http, base)
    assert (offer["version"], offer["channel"], button) == ("4.0.0", "stable", "4.0.0")
    assert 'channel = "stable"' in config_file.read_text()
    assert h.service.updates.offer.path_for("4.0.0").exists()                          # installable as offered
