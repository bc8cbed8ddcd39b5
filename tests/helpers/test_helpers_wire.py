"""The job frame (binary header + PCM) round-trips; anything else gets a specific error code."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqtt import jobs as wire
from mqtt.broker import Account, render_acl
from mqtt.messages import ProtocolError


def frame(head: dict, pcm: bytes = b"\0\0" * 8) -> bytes:
    raw = json.dumps(head).encode()
    return struct.pack(">H", len(raw)) + raw + pcm


def test_a_job_round_trips_and_costs_a_small_header():
    job = wire.SttJob("ab12-7", "tiny.en", 3000, b"\x01\x02" * 16000, "en")
    payload = job.to_payload()
    assert wire.SttJob.from_payload(payload, 1 << 20) == job
    assert len(payload) - len(job.pcm) < 100


@pytest.mark.parametrize("payload,code", [
    (b"", "bad_message"),
    (b"\xff\xff{}", "bad_message"),                                        # header longer than the payload
    (struct.pack(">H", 3) + b"{x}", "bad_json"),
    (frame([1]), "bad_message"),
    (frame({"v": 1, "job": "a", "model": "m", "deadline_ms": 10}), "unsupported_version"),
    (frame({"v": 2, "job": "a/b", "model": "m", "deadline_ms": 10}), "bad_message"),
    (frame({"v": 2, "job": "a", "model": "../x", "deadline_ms": 10}), "bad_message"),
    (frame({"v": 2, "job": "a", "model": "m", "deadline_ms": 0}), "bad_message"),
    (frame({"v": 2, "job": "a", "model": "m", "deadline_ms": 10}, b"\0\0\0"), "bad_message"),   # half a sample
    (frame({"v": 2, "job": "a", "model": "m", "deadline_ms": 10}, b"\0" * 4096), "too_large"),
])
def test_bad_jobs_get_specific_codes(payload, code):
    with pytest.raises(ProtocolError) as err:
        wire.SttJob.from_payload(payload, 2048)
    assert err.value.code == code and err.value.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_a_job_or_a_protocol_error(data):
    try:
        wire.SttJob.from_payload(data, 1 << 16)
    except ProtocolError:
        pass


def test_a_result_with_too_much_text_is_refused():
    with pytest.raises(ProtocolError):
        wire.JobResult.from_payload(json.dumps({"v": 1, "job": "a", "text": "x" * (wire.MAX_TEXT + 1)}).encode())


def test_a_helper_login_reads_only_its_own_jobs_and_is_denied_its_own_voice_topics():
    acl = render_acl([Account("h1", "x", "helper", "helper", **wire.helper_acl("h1"))])
    assert "topic read hearth/jobs/v2/h1/#" in acl and "topic read hearth/jobs/v1/info" in acl
    assert "hearth/jobs/v1/#" not in acl and "hearth/jobs/v2/#" not in acl
    assert all(f"topic deny hearth/h1/{kind}/#" in acl for kind in ("stt", "tts", "wake"))
    assert "topic readwrite #" not in acl
