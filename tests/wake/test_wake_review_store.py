"""The wake word review's store (appliance/wake/review.py) without a service: which finals become
clips, the switch, the marks a kind allows, the cap, the retention. Real files in a temp folder;
the finals are what the session manager hands its hooks."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from appliance.state.config import PrivacySettings
from appliance.wake import review as r
from appliance.wake.review import ReviewError, WakeReview, Woken, cancelled

SECOND = b"\x10\x00\xf0\xff" * 8000          # one second of a quiet square wave, 16 kHz mono s16


class Box:
    def __init__(self, tmp_path, on=True):
        self.privacy = PrivacySettings(store_wake_clips=on)
        self.streaming: set[str] = set()
        self.woken = Woken()
        self.review = WakeReview(tmp_path / "wake-review", lambda: self.privacy, None, self.woken,
                                 lambda device: device in self.streaming)

    def woke(self, device: str, session: str, text: str, seconds: float = 3.0):
        self.woken.add(device, session, SECOND * 2)
        return self.review.on_final(device, session, text, SECOND * int(seconds), "faster-whisper")


def test_only_wake_words_without_a_command_and_commands_without_a_wake_word_are_kept(tmp_path):
    box = Box(tmp_path)
    assert box.woke("porch", "w1-a", "") is not None                       # silence after the wake word
    assert box.woke("porch", "w2-a", "Never mind.") is not None            # called off
    assert box.woke("porch", "w3-a", "What time is it?") is None           # a command: nothing to review
    assert box.review.on_final("hall", "s1", "Turn on the lights.", SECOND, "x") is None   # not a satellite
    box.streaming.add("hall")
    assert box.review.on_final("hall", "s2", "Turn on the lights.", SECOND * 12, "x") is not None
    assert box.review.on_final("hall", "s3", "", SECOND, "x") is None      # nothing said, no wake word: nothing
    kinds = [(c["device"], c["kind"], c["text"], c["audio_s"]) for c in box.review.clips()]
    assert sorted(kinds) == [("hall", "no_detection", "Turn on the lights.", 8.0),        # capped at CLIP_S
                             ("porch", "no_command", "", 5.0), ("porch", "no_command", "Never mind.", 5.0)]
    assert box.review.counts() == {"hall": {"no_command": 0, "no_detection": 1, "false_wake": 0, "missed_wake": 0,
                                            "fine": 0, "unmarked": 1},
                                   "porch": {"no_command": 2, "no_detection": 0, "false_wake": 0, "missed_wake": 0,
                                             "fine": 0, "unmarked": 2}}


@pytest.mark.parametrize("text, off", [("never mind", True), ("Nevermind!", True), ("Cancel.", True),
                                       ("Forget it", True), ("No thanks", True), ("never mind the lights", False),
                                       ("stop the music", False), ("cancel my alarm", False)])
def test_what_calls_a_command_off(text, off):
    assert cancelled(text) is off


def test_off_keeps_nothing_and_forgets_the_session(tmp_path):
    box = Box(tmp_path, on=False)
    assert box.woke("porch", "w1-a", "") is None
    assert not (tmp_path / "wake-review").exists()
    assert box.woken.take("porch", "w1-a") is None                        # read once, not kept in memory
    box.privacy = PrivacySettings(store_wake_clips=True)                  # the control: the same final, switch on
    assert box.woke("porch", "w1-a", "") is not None


def test_marks_follow_the_kind_and_bad_ids_are_refused(tmp_path):
    box = Box(tmp_path)
    box.woke("porch", "w1-a", "")
    clip = box.review.clips()[0]
    for bad in ("missed_wake", "yes", "../x"):
        with pytest.raises(ReviewError):
            box.review.mark(clip["id"], bad)
    for bad_id in ("../../hearth.toml", "2025-01-01/../../x", "", "2025-01-01/000000-000000-x"):
        with pytest.raises(ReviewError):
            box.review.mark(bad_id, "false_wake")
    assert box.review.clips()[0]["mark"] == ""                            # nothing changed by the refusals
    assert box.review.mark(clip["id"], "false_wake")["mark"] == "false_wake"
    assert box.review.counts()["porch"]["false_wake"] == 1
    assert box.review.clips(mark="") == [] and len(box.review.clips(mark="false_wake")) == 1
    assert box.review.mark(clip["id"], "")["mark"] == "" and box.review.counts()["porch"]["unmarked"] == 1


def test_the_cap_and_the_retention(tmp_path, monkeypatch):
    monkeypatch.setattr(r, "MAX_CLIPS", 3)
    box = Box(tmp_path)
    kept = [box.woke("porch", f"w{k}-a", "") for k in range(5)]
    assert [p is not None for p in kept] == [True, True, True, False, False]
    old = tmp_path / "wake-review" / (date.today() - timedelta(days=31)).isoformat()
    old.mkdir()
    (old / "000000-000000-porch.json").write_text(json.dumps({"kind": "no_command", "device": "porch", "mark": ""}))
    assert box.review.counts()["porch"]["no_command"] == 4
    assert box.review.sweep() == 1                                         # retention_days = 30
    assert box.review.counts()["porch"]["no_command"] == 3
