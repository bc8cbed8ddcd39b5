"""What the fair-share abuse tests share: their own Hearth (Wyoming on), device B with its held-out
clip (espeak-ng, a voice Hearth was not tuned on), A's clip (Piper), and the scenarios of
bench/abuse.py, so the tests and `./build.sh bench abuse` measure the same thing.

    from fair_share_kit import fair   # the module-scoped fixture
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.audio.pcm import Wav
from appliance.commands.client import DeviceLink
from bench import abuse
from conftest import Hearth, make_settings, word_error_rate

ROUNDS = 3                  # B's round trips quiet, then as many under attack (medians compared)


@dataclass
class Fair:
    hearth: Hearth
    b: DeviceLink
    b_wav: Wav
    a_wav: Path

    def scenario(self, attack: str) -> abuse.Outcome:
        self.settle()
        return abuse.scenario(self.hearth, attack, self.b, self.b_wav, abuse.attackers(self.hearth, attack),
                              self.a_wav, rounds=ROUNDS, limit_s=60)

    def settle(self, timeout: float = 15.0) -> None:
        """Wait (bounded) until nothing of an earlier attack is left: no open session, no decode waiting."""
        service = self.hearth.service
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (service.sessions.sessions or service.decoder.depth or service.decoder.busy):
            time.sleep(0.1)

    def check_b(self, out: abuse.Outcome) -> None:
        """B was served throughout, correctly, and within 2x of its quiet round trip."""
        assert out.b_errors == [], out.b_errors
        for text in out.b_texts:
            assert word_error_rate(abuse.B_TEXT, text) <= 0.4, text
        quiet, attacked = statistics.median(out.quiet), statistics.median(out.attacked)
        assert attacked <= 2 * quiet, (f"B's round trip went from {quiet:.2f} s quiet to {attacked:.2f} s under "
                                       f"{out.attack} ({out.quiet} -> {out.attacked}); attacker: {out.attacker}")


@pytest.fixture(scope="module")
def fair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fair-share")
    h = Hearth(make_settings(tmp / "data", wyoming={"enabled": True})).start()
    h.service.wyoming_access.allow("127.0.0.1")     # a person allowed the Wyoming clients' address
    try:
        b_wav = abuse.make_clip(h, abuse.B_TEXT, "espeak", tmp / "b.wav")
        abuse.make_clip(h, abuse.A_TEXT, "piper", tmp / "a.wav")
        with DeviceLink(h.credentials("device-b")) as b:
            abuse.round_trip(b, b_wav)               # warm-up: the first decode pays for loading
            yield Fair(h, b, b_wav, tmp / "a.wav")
    finally:
        h.stop()
