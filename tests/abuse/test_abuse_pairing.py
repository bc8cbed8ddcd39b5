"""Pairing requests from a LAN stranger: one address flooding code requests is collapsed and
capped, the whole list is capped, another address still pairs, and the page admits a device only
when a person types the code it shows (never a click on a name the device chose).

Requests come over real HTTP from other loopback source addresses (127.0.0.x), so the service
sees them as different hosts. A Hearth of this module's own keeps its small caps and its list
away from the other tests."""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlencode

import pytest
import requests

from appliance.commands import cli
from appliance.commands import client as device_client
from appliance.commands.client import DeviceLink
from mqtt.client import Credentials
from web_support import admin_password, sign_in, start_web_hearth

pytestmark = pytest.mark.own_hearth

PER_ADDRESS, OVERALL = 2, 6


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    h = start_web_hearth(tmp_path_factory.mktemp("pairing-abuse"), devices={
        "max_pending": OVERALL, "max_pending_per_address": PER_ADDRESS, "code_rate_per_min": 30})
    yield h
    h.stop()


@pytest.fixture(scope="module")
def admin(web):
    http_session, _ = sign_in(web.web_url, admin_password(web))
    return http_session


def ask_code(web, source: str, **params) -> tuple[int, dict]:
    """GET /v1/device/code from `source`, as a device at that address would."""
    conn = http.client.HTTPConnection("127.0.0.1", web.service.web.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/v1/device/code?" + urlencode({"state": uuid.uuid4().hex, **params}))
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def pending(admin, web, source: str | None = None) -> list[dict]:
    listed = admin.get(f"{web.web_url}/api/devices").json()["pending"]
    return [p for p in listed if source is None or p["client_addr"] == source]


def test_one_address_flooding_requests_is_collapsed_and_capped_and_another_address_still_pairs(web, admin):
    flood, other = "127.0.0.31", "127.0.0.32"
    asked = [ask_code(web, flood, name="Kitchen speaker", type="satellite") for _ in range(8)]
    assert [status for status, _ in asked] == [200] * 8
    mine = pending(admin, web, flood)
    assert len(mine) == 1 and mine[0]["asked"] == 8 and mine[0]["name"] == "Kitchen speaker"
    assert "code" not in mine[0]                                    # the list never gives a code away
    # only the newest of the 8 codes is still waiting: the earlier ones cannot be confirmed
    first_code, newest = asked[0][1], asked[-1][1]
    stale = admin.post(f"{web.web_url}/api/devices/confirm", json={"code": first_code["code"]})
    assert stale.status_code == 422 and "no pairing code" in stale.json()["errors"]["code"]

    assert ask_code(web, flood, name="Bedroom speaker")[0] == 200    # a second request: room for PER_ADDRESS
    status, refused = ask_code(web, flood, name="Porch speaker")
    assert status == 429 and refused["error"] == "too_many_pending" and flood in refused["message"]
    assert len(pending(admin, web, flood)) == PER_ADDRESS

    # positive control, in the same minute: another address gets a code and a person pairs it by typing it
    status, code = ask_code(web, other, name="Hall satellite", type="satellite")
    assert status == 200
    request = pending(admin, web, other)[0]
    assert request["name"] == "Hall satellite" and request["client_addr"] == other
    ok = admin.post(f"{web.web_url}/api/devices/confirm",
                    json={"request": request["id"], "code": code["code"].lower(), "room": "Hall"})
    assert ok.status_code == 200, ok.text
    activated = requests.post(f"{web.web_url}/v1/device/activate", json={"state": code["state"], "token": code["token"]})
    assert activated.status_code == 200
    mqtt = activated.json()["mqtt"]
    with DeviceLink(Credentials("127.0.0.1", mqtt["port"], mqtt["username"], mqtt["password"])) as link:
        assert device_client.say(link, "Paired despite the flood.").end.chunks >= 1
    # the flood's newest code still works for the person whose device really shows it
    assert admin.post(f"{web.web_url}/api/devices/confirm", json={"code": newest["code"]}).status_code == 200


def test_the_page_asks_for_the_code_and_never_admits_a_name_alone(web, admin):
    base = web.web_url
    status_a, a = ask_code(web, "127.0.0.33", name="Living room speaker")
    status_b, b = ask_code(web, "127.0.0.34", name="Garage speaker")
    assert status_a == status_b == 200
    req_a, req_b = pending(admin, web, "127.0.0.33")[0]["id"], pending(admin, web, "127.0.0.34")[0]["id"]
    page = admin.get(f"{base}/devices").text
    assert a["code"] not in page and b["code"] not in page           # the person reads the code on the device
    assert 'at <b class="addr">127.0.0.33</b>' in page and f'name="request" value="{req_a}"' in page
    devices_before = len(web.service.devices.list())

    no_code = admin.post(f"{base}/api/devices/confirm", json={"request": req_a, "room": "Living room"})
    assert no_code.status_code == 422 and "type the code" in no_code.json()["errors"][f"{req_a}.code"]
    crossed = admin.post(f"{base}/api/devices/confirm", json={"request": req_a, "code": b["code"]})
    assert crossed.status_code == 422 and "another pairing request" in crossed.json()["errors"][f"{req_a}.code"]
    forged = admin.post(f"{base}/api/devices/confirm", json={"request": "../../x", "code": a["code"]})
    assert forged.status_code == 422
    assert len(web.service.devices.list()) == devices_before           # nothing was admitted
    assert len(pending(admin, web, "127.0.0.34")) == 1                  # and B still waits for its own code

    typed = admin.post(f"{base}/api/devices/confirm", json={"request": req_a, "code": a["code"]})
    assert typed.status_code == 200 and typed.json()["device"]["name"] == "Living room speaker"
    assert len(web.service.devices.list()) == devices_before + 1


def test_the_whole_list_is_capped_and_frees_up_when_a_request_is_confirmed(web, admin):
    codes = []
    room = OVERALL - len(pending(admin, web))                        # what the earlier test left waiting
    assert room >= 2
    for i in range(room):
        status, code = ask_code(web, f"127.0.0.{40 + i}", name=f"Speaker {i}")
        assert status == 200
        codes.append(code)
    status, refused = ask_code(web, "127.0.0.60", name="One too many")
    assert status == 429 and refused["error"] == "too_many_pending" and f"at most {OVERALL}" in refused["message"]
    assert len(pending(admin, web)) == OVERALL
    # a person pairs one of them (the command line keeps working): a new address gets a code again
    assert cli.main(["--data", str(web.settings.data_dir), "devices", "pair", codes[0]["code"]]) == 0
    assert ask_code(web, "127.0.0.60", name="Now there is room")[0] == 200
