"""Manifests and signatures, imports, the MQTT messages and the docs that list them."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_cache import manifest
from firmware_cache.errors import ManifestError, SignatureError
from firmware_support import Upstream, image, make_cache, publish_release, release_doc
from mqtt import firmware as fw

ROOT = Path(__file__).resolve().parents[2]
KEY = Ed25519PrivateKey.generate()
PUBLIC_HEX = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
DATA = image(64 << 10)


def raw(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_signed_manifest_verifies_with_hex_and_pem_keys(tmp_path):
    doc = manifest.sign(release_doc("speaker", "1.0.0", DATA, "speaker.bin"), KEY)
    pem = tmp_path / "key.pem"
    pem.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    for text in (PUBLIC_HEX, str(pem)):
        release = manifest.parse(raw(doc), device_type="speaker", public_key=manifest.load_public_key(text))
        assert release.signed and release.version == "1.0.0"


@pytest.mark.parametrize("change", [{"sha256": "0" * 64}, {"version": "9.9.9"}, {"url": "http://evil/x.bin"}])
def test_tampered_signed_manifest_is_rejected(change):
    doc = {**manifest.sign(release_doc("speaker", "1.0.0", DATA, "speaker.bin"), KEY), **change}
    with pytest.raises(SignatureError, match="does not match"):
        manifest.parse(raw(doc), device_type="speaker", public_key=manifest.load_public_key(PUBLIC_HEX))


def test_unsigned_or_other_key_is_rejected_when_a_key_is_configured():
    key = manifest.load_public_key(PUBLIC_HEX)
    with pytest.raises(SignatureError, match="unsigned"):
        manifest.parse(raw(release_doc("speaker", "1", DATA, "s.bin")), device_type="speaker", public_key=key)
    other = manifest.sign(release_doc("speaker", "1", DATA, "s.bin"), Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError):
        manifest.parse(raw(other), device_type="speaker", public_key=key)


@pytest.mark.parametrize("doc, message", [
    (b"not json", "not JSON"),
    (b"[]", "JSON object"),
    ({"version": "1", "url": "a", "size": 1}, "sha256"),
    ({"version": "1", "url": "a", "size": 0, "sha256": "a" * 64}, "size"),
    ({"version": "1", "url": "a", "size": 5, "sha256": "xyz"}, "sha256 must be 64 hex"),
    ({"version": "../1", "url": "a", "size": 5, "sha256": "a" * 64}, "version"),
    ({"device_type": "lamp", "version": "1", "url": "a", "size": 5, "sha256": "a" * 64}, "not 'speaker'"),
    ({"version": "1", "url": "file:///etc/passwd", "size": 5, "sha256": "a" * 64}, "http or https"),
])
def test_bad_manifests_say_what_is_wrong(doc, message):
    body = doc if isinstance(doc, bytes) else raw(doc)
    with pytest.raises(ManifestError, match=message):
        manifest.parse(body, device_type="speaker", base_url="http://127.0.0.1/m.json")


def test_tampered_upstream_manifest_downloads_nothing(tmp_path):
    up = Upstream()
    try:
        doc = publish_release(up, "speaker", "1.0.0", DATA, key=KEY)
        up.files["/speaker/stable.json"] = raw({**doc, "sha256": "1" * 64})
        cache = make_cache(tmp_path, up.url, public_key=PUBLIC_HEX)
        cache.add_type("speaker")
        [outcome, _] = cache.check()
        assert outcome.state == "error" and "signature" in outcome.error
        assert "/speaker-1.0.0.bin" not in up.gets
        publish_release(up, "speaker", "1.0.0", DATA, key=KEY)      # the genuine one is accepted
        [outcome, _] = cache.check()
        assert outcome.state == "cached" and cache.registry.current("speaker", "stable").signed
        cache.stop()
    finally:
        up.close()


def test_import_from_a_folder_checks_signature_and_hash(tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    good, bad = image(70_000, 2), image(70_000, 3)
    (usb / "good.bin").write_bytes(good)
    (usb / "bad.bin").write_bytes(bad[:-1] + b"!")
    (usb / "good.json").write_text(json.dumps(manifest.sign(release_doc("speaker", "2.0", good, "good.bin"), KEY)))
    (usb / "bad.json").write_text(json.dumps(manifest.sign(release_doc("lamp", "1.0", bad, "bad.bin"), KEY)))
    (usb / "unsigned.json").write_text(json.dumps(release_doc("lamp", "1.1", bad, "bad.bin")))
    cache = make_cache(tmp_path / "data", public_key=PUBLIC_HEX)
    outcomes = {o.device_type + " " + o.state: o for o in cache.import_dir(usb)}
    assert set(outcomes) == {"lamp error", "speaker cached", "? error"}
    assert "tampered" in outcomes["lamp error"].error
    assert "unsigned" in outcomes["? error"].error
    assert cache.registry.current("speaker", "stable").version == "2.0"
    assert cache.registry.current("lamp", "stable") is None
    assert sorted(p.name for p in (tmp_path / "data" / "firmware" / "objects").glob("*/*")) == [manifest.Release(
        "speaker", "stable", "2.0", "good.bin", len(good), cache.registry.current("speaker", "stable").sha256).sha256]
    cache.stop()


@pytest.mark.parametrize("cls", [c for c in vars(fw).values() if isinstance(c, type) and issubclass(c, fw.Message) and c.TYPE])
def test_every_firmware_message_round_trips(cls):
    defaults = {"device_type": "speaker", "version": "1.0.0", "ok": True}
    fields = {k: v for k, v in defaults.items() if k in cls.__dataclass_fields__}
    msg = cls(**fields)
    assert cls.from_payload(msg.to_payload()) == msg


def test_bad_progress_is_refused():
    with pytest.raises(fw.ProtocolError):
        fw.FirmwareProgress.from_payload(b'{"v":1,"version":"1","state":""}')


def test_docs_list_every_topic_and_config_key():
    text = (ROOT / "docs" / "firmware.md").read_text()
    for topic in fw.TOPICS:
        assert f"`{topic}`" in text, topic
    from appliance.state.config import FirmwareSettings
    from appliance.state.config import _toml_value
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", text.split("## Config keys")[1], re.M))
    assert rows == {f.name: _toml_value(f.default) for f in dataclasses.fields(FirmwareSettings)}
