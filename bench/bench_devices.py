"""Devices: how long pairing, revoking and the Mycroft /v1/stt edge take on this machine.

    .venv/bin/python bench/bench_devices.py

Starts a real Hearth (managed Mosquitto, the real engines) in a temporary directory and prints
medians; nothing is asserted.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import Hearth, make_settings  # noqa: E402
from mqtt.client import Connection, Credentials  # noqa: E402


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (n={len(samples)})"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    h = Hearth(make_settings(tmp / "data", devices={"code_rate_per_min": 1000})).start()
    try:
        url = h.web_url
        pair, connect, revoke = [], [], []
        for i in range(10):
            t0 = time.perf_counter()
            code = requests.get(f"{url}/v1/device/code", params={"state": f"b{i}", "type": "satellite"}).json()
            h.service.devices.confirm(code["code"])
            login = requests.post(f"{url}/v1/device/activate", json={"state": f"b{i}", "token": code["token"]}).json()
            t1 = time.perf_counter()
            m = login["mqtt"]
            conn = Connection(Credentials("127.0.0.1", m["port"], m["username"], m["password"]), lambda t, p: None).start()
            t2 = time.perf_counter()
            h.service.devices.revoke(login["uuid"])
            while conn.connected.is_set():
                time.sleep(0.001)
            t3 = time.perf_counter()
            conn.stop()
            pair.append(t1 - t0), connect.append(t2 - t1), revoke.append(t3 - t2)
        print(f"pairing over HTTP (code, confirm, activate + broker reload): {median_ms(pair)}")
        print(f"first MQTT connect with the new login:                      {median_ms(connect)}")
        print(f"revoke until the broker dropped the session:                {median_ms(revoke)}")

        code = requests.get(f"{url}/v1/device/code", params={"state": "stt"}).json()
        h.service.devices.confirm(code["code"])
        access = requests.post(f"{url}/v1/device/activate", json={"state": "stt", "token": code["token"]}).json()["accessToken"]
        raw, flac = tmp / "s.wav", tmp / "s.flac"
        pcm = b"".join(h.service.speaker.stream("Turn on the kitchen lights and set a timer for ten minutes."))
        with wave.open(str(raw), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(h.service.voices.info(None).rate)
            w.writeframes(pcm)
        subprocess.run(["sox", str(raw), "-r", "16000", str(flac)], check=True)
        body = flac.read_bytes()
        stt = []
        for _ in range(7):
            t0 = time.perf_counter()
            r = requests.post(f"{url}/v1/stt", params={"lang": "en-us"}, data=body,
                              headers={"Authorization": f"Bearer {access}", "Content-Type": "audio/x-flac"})
            stt.append(time.perf_counter() - t0)
        seconds = len(pcm) / 2 / h.service.voices.info(None).rate
        print(f"POST /v1/stt, {seconds:.1f} s FLAC ({len(body) // 1024} KiB) -> {r.json()}: {median_ms(stt)}")
    finally:
        h.stop()


if __name__ == "__main__":
    main()
