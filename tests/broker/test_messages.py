"""Every wire message round-trips; the decoders survive any payload (hypothesis)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqtt import topics
from mqtt.messages import (PROTOCOL_MAX, Message, ProtocolError, SttEnd, SttStart, TtsSay,
                           all_message_classes)

SAMPLES = {str: "abc-1", int: 16000, float: 1.5, bool: True, list: ["a"]}


def sample(cls: type[Message]) -> Message:
    """An instance with a non-default value in every field that validates."""
    import typing
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        want = hints[f.name]
        base = next((t for t in typing.get_args(want) if t is not type(None)), want)
        base = typing.get_origin(base) or base
        values[f.name] = SAMPLES.get(base, f.default)
    # fields whose valid values are narrower than their type
    for name, good in {"endpoint": "vad", "turn": "patient", "rate": 22050, "width": 2, "channels": 1, "text": "Hello there."}.items():
        if name in values:
            values[name] = good
    return cls(**values)


def test_every_message_class_is_discovered():
    names = {c.__name__ for c in all_message_classes()}
    assert {"SttStart", "SttEnd", "SttPartial", "SttFinal", "TtsSay", "TtsStart", "TtsEnd", "Error", "ServerInfo"} <= names
    types = [c.TYPE for c in all_message_classes()]
    assert len(types) == len(set(types)), "two message classes share a TYPE"


@pytest.mark.parametrize("cls", all_message_classes(), ids=lambda c: c.__name__)
def test_round_trip(cls):
    msg = sample(cls)
    again = cls.from_payload(msg.to_payload())
    assert again == msg
    body = json.loads(msg.to_payload())
    assert body["v"] == PROTOCOL_MAX and body["type"] == cls.TYPE


def test_unknown_fields_are_ignored_and_missing_ones_default():
    payload = json.dumps({"v": 1, "session": "s1", "from_the_future": {"x": 1}})
    msg = SttStart.from_payload(payload)
    assert msg.rate == 16000 and msg.endpoint == "device"


@pytest.mark.parametrize("payload,code", [
    (b"{not json", "bad_json"),
    (b"[1, 2]", "bad_message"),
    (b'{"session": "s1"}', "bad_message"),                       # no v
    (b'{"v": 99, "session": "s1"}', "unsupported_version"),
    (b'{"v": 0, "session": "s1"}', "unsupported_version"),
    (b'{"v": 1}', "bad_message"),                                # no session
    (b'{"v": 1, "session": "a/b"}', "bad_message"),              # not a topic-safe id
    (b'{"v": 1, "session": "s1", "rate": "fast"}', "bad_message"),
    (b'{"v": 1, "session": "s1", "rate": 12345}', "bad_audio_format"),
    (b'{"v": 1, "session": "s1", "width": 4}', "bad_audio_format"),
    (b'{"v": 1, "session": "s1", "channels": 6}', "bad_audio_format"),
    (b'{"v": 1, "session": "s1", "endpoint": "psychic"}', "bad_message"),
    (b'{"v": true, "session": "s1"}', "bad_message"),
])
def test_bad_start_messages_get_specific_codes(payload, code):
    with pytest.raises(ProtocolError) as err:
        SttStart.from_payload(payload)
    assert err.value.code == code
    assert err.value.message


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(ProtocolError) as err:
        TtsSay.from_payload(b" " * 20000, max_bytes=16384)
    assert err.value.code == "too_large"


def test_empty_text_is_refused():
    with pytest.raises(ProtocolError) as err:
        TtsSay.from_payload(b'{"v": 1, "request": "r", "text": "   "}')
    assert err.value.code == "bad_text"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_decoders_never_fail_with_anything_but_protocol_error_on_bytes(data):
    for cls in (SttStart, SttEnd, TtsSay):
        try:
            cls.from_payload(data)
        except ProtocolError:
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "session", "request", "text", "rate", "width", "channels",
                                        "endpoint", "partials", "voice", "language", "x"]), json_values))
def test_decoders_on_structured_json(obj):
    for cls in (SttStart, SttEnd, TtsSay):
        try:
            msg = cls.from_payload(json.dumps(obj))
        except ProtocolError:
            continue
        assert cls.from_payload(msg.to_payload()) == msg


@given(st.text(max_size=80))
def test_topic_parser_never_raises(topic):
    parsed = topics.parse(topic)
    if parsed is not None:
        assert topics.DEVICE_ID.match(parsed.device)


def test_topic_parser_examples():
    assert topics.parse("hearth/kitchen/stt/audio/s-1") == topics.Inbound("kitchen", "stt/audio", "s-1")
    assert topics.parse("hearth/kitchen/tts/say") == topics.Inbound("kitchen", "tts/say")
    assert topics.parse("hearth/../stt/start") is None
    assert topics.parse("other/kitchen/stt/start") is None
    assert topics.parse("hearth/kitchen/stt/audio/a+b") is None
