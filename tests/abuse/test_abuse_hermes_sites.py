"""One Hermes login claims 500 site ids (`startListening` for each): it once took all 64 sessions, and
another device got 0 of 15 transcripts (`busy`). Every site comes over the one Hermes login, so its
sites together are one share: at most `[hermes] max_sites` listen at once, the rest get a
`hermes/error/asr`. A paired MQTT device meanwhile gets its transcripts within 2x of its quiet round
trip. Positive control: the Hermes login really holds its cap of sites, and the rest were refused."""

from __future__ import annotations

import pytest

import json
import statistics
import threading
import time

from rhasspyhermes.asr import AsrStartListening, AsrStopListening

from appliance.commands import client
from appliance.compat import hermes_account
from conftest import word_error_rate
from mqtt.client import Connection, Credentials
from voices import in_room, quiet, say, to_wav

pytestmark = [pytest.mark.realtime, pytest.mark.timing]

SITES = 500
TEXT = "turn on the kitchen light"
TAIL_S = 0.6


def _round_trip(link, clip) -> float:
    heard = client.transcribe(link, clip, realtime=True, timeout=60)
    assert word_error_rate(TEXT, heard.final.text) <= 0.2, heard.final.text
    return heard.latency_s + TAIL_S


def test_500_site_ids_on_one_hermes_login_take_one_share(compat_hearth):
    h = compat_hearth
    cap = h.settings.hermes.max_sites
    login = hermes_account.ensure_login(h.settings.data_dir)
    errors: list[dict] = []
    lock = threading.Lock()

    def got(topic, payload):
        if topic == "hermes/error/asr":
            with lock:
                errors.append(json.loads(payload))

    hermes = Connection(Credentials("127.0.0.1", h.settings.broker.port, login.username, login.password), got,
                        ["hermes/error/asr"], client_id="many-sites").start()
    link = h.device("hermes-bystander")
    clip = to_wav(in_room([quiet(0.3), say(h, "espeak", TEXT), quiet(TAIL_S)], seed=29))
    edge = h.service.hermes
    try:
        _round_trip(link, clip)                                         # warm-up
        quiet_s = [_round_trip(link, clip) for _ in range(3)]
        for i in range(SITES):
            msg = AsrStartListening(site_id=f"claimed-{i}", session_id=f"s-{i}", stop_on_silence=False)
            hermes.publish(msg.topic(), msg.payload(), 0)
        end = time.monotonic() + 20
        while time.monotonic() < end and len(errors) < SITES - cap:
            time.sleep(0.1)
        attacked_s = [_round_trip(link, clip) for _ in range(3)]
        listening = len(edge.listening)
    finally:
        for i in range(SITES):
            stop = AsrStopListening(site_id=f"claimed-{i}", session_id=f"s-{i}")
            hermes.publish(stop.topic(), stop.payload(), 0)
        time.sleep(1.0)
        hermes.stop()
        link.__exit__(None, None, None)
    print(f"bystander quiet {statistics.median(quiet_s) * 1000:.0f} ms, with {SITES} claimed sites "
          f"{statistics.median(attacked_s) * 1000:.0f} ms; {listening} sites listening, {len(errors)} refused")
    assert listening == cap                                             # positive control: it holds its share
    assert len(errors) >= SITES - cap and all("max_sites" in e.get("error", "") for e in errors[:5]), errors[:3]
    assert statistics.median(attacked_s) <= 2 * statistics.median(quiet_s), (quiet_s, attacked_s)
