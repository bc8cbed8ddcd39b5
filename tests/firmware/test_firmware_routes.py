"""The device download route and the ESPHome manifest, through a real waitress."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

from firmware_support import WebServer, image, make_cache, release_doc

DATA = image((1 << 20) + 123)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("usb")
    (folder / "speaker-1.0.0.bin").write_bytes(DATA)
    doc = release_doc("speaker", "1.0.0", DATA, "speaker-1.0.0.bin", chip_family="ESP32-S3")
    (folder / "speaker-stable.json").write_text(json.dumps(doc))
    cache = make_cache(tmp_path_factory.mktemp("data"))
    [outcome] = cache.import_dir(folder)
    assert outcome.state == "cached", outcome.error
    web = WebServer(cache)
    yield web.url
    web.close()
    cache.stop()


def get(url: str, **headers) -> requests.Response:
    return requests.get(url, headers=headers, timeout=10)


def test_whole_file_with_etag_and_checksums(served):
    r = get(f"{served}/firmware/{SHA}.bin")
    assert r.status_code == 200 and r.content == DATA
    assert r.headers["ETag"] == f'"{SHA}"'
    assert r.headers["X-Checksum-Sha256"] == SHA
    assert r.headers["Digest"] == "sha-256=" + base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(DATA)


@pytest.mark.parametrize("header, first, last", [
    ("bytes=0-99", 0, 99),
    ("bytes=1000-", 1000, len(DATA) - 1),
    ("bytes=-500", len(DATA) - 500, len(DATA) - 1),
    ("bytes=100-99999999", 100, len(DATA) - 1),
])
def test_ranges_answer_206_with_exactly_those_bytes(served, header, first, last):
    r = get(f"{served}/firmware/{SHA}.bin", Range=header)
    assert r.status_code == 206
    assert r.content == DATA[first:last + 1]
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(DATA)}"


def test_range_past_the_end_is_416(served):
    r = get(f"{served}/firmware/{SHA}.bin", Range=f"bytes={len(DATA)}-")
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"
    assert r.json()["error"] == "range_not_satisfiable"


def test_if_range_with_another_etag_sends_the_whole_file(served):
    r = get(f"{served}/firmware/{SHA}.bin", Range="bytes=10-", **{"If-Range": '"other"'})
    assert r.status_code == 200 and r.content == DATA


def test_if_none_match_is_304(served):
    r = get(f"{served}/firmware/{SHA}.bin", **{"If-None-Match": f'"{SHA}"'})
    assert r.status_code == 304 and r.content == b""


def test_head_has_headers_but_no_body(served):
    r = requests.head(f"{served}/firmware/{SHA}.bin", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(DATA)) and r.content == b""


@pytest.mark.parametrize("name", ["0" * 64, "not-a-hash"])
def test_unknown_file_is_404_with_a_json_body(served, name):
    r = get(f"{served}/firmware/{name}.bin")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["error"] == "not_found"


def test_esphome_manifest(served):
    r = get(f"{served}/firmware/speaker/manifest.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["name"] == "speaker" and doc["version"] == "1.0.0"
    [build] = doc["builds"]
    assert build["chipFamily"] == "ESP32-S3"
    assert build["ota"]["md5"] == hashlib.md5(DATA).hexdigest()
    assert build["ota"]["path"] == f"{served}/firmware/{SHA}.bin"
    assert get(build["ota"]["path"]).content == DATA
    assert get(f"{served}/firmware/nosuchtype/manifest.json").status_code == 404
