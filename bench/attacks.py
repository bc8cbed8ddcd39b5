"""Attacks on the voice pipeline from another process, as a LAN attacker (or a broken device) would:

    python -m bench.attacks stream-flood  --port P --user A --password X --wav F --seconds S
    python -m bench.attacks churn         --port P --user A --password X --seconds S [--connections 200]
    python -m bench.attacks wyoming-flood --port P --wav F --seconds S [--clients 20]
    python -m bench.attacks mycroft-flood --url U --token T --wav F --seconds S [--threads 8]

Each runs for at most --seconds, then prints one JSON line: what it sent and what came back
(error codes, HTTP statuses), so a test can check that the attacker got the documented error.
Used by tests/abuse/ and `./build.sh bench abuse`; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import wave

FRAME_MS = 30
_stop = threading.Event()         # SIGTERM: stop early and still print the summary


def running(deadline: float) -> bool:
    return not _stop.is_set() and time.monotonic() < deadline


def read_pcm(path: str) -> tuple[bytes, int]:
    with wave.open(path) as w:
        return w.readframes(w.getnframes()), w.getframerate()


# --- device A streams audio at 10x real time --------------------------------------------------

def stream_flood(args) -> dict:
    """Sessions one after another, each streaming the clip (looped) at `--speed` x real time."""
    from appliance.commands.client import DeviceLink
    from mqtt import topics
    from mqtt.client import Credentials
    from mqtt.messages import Error, SttStart

    pcm, rate = read_pcm(args.wav)
    step = rate * 2 * FRAME_MS // 1000
    errors: collections.Counter = collections.Counter()
    sessions = frames = 0
    deadline = time.monotonic() + args.seconds
    with DeviceLink(Credentials("127.0.0.1", args.port, args.user, args.password)) as link:
        while running(deadline):
            session = uuid.uuid4().hex[:12]
            sessions += 1
            link.publish(topics.stt_start(link.device), SttStart(session=session, rate=rate).to_payload())
            t0, sent, ended = time.monotonic(), 0, False
            while running(deadline) and sent < 29 * rate * 2 and not ended:
                i = sent % (len(pcm) - len(pcm) % step or step)
                link.publish(topics.stt_audio(link.device, session), pcm[i:i + step] or b"\0\0" * (step // 2), qos=0)
                sent += step
                frames += 1
                time.sleep(max(0.0, t0 + sent / (rate * 2) / args.speed - time.monotonic()))
                while not link.inbox.empty():
                    item = link.inbox.get_nowait()
                    if item.topic == topics.error(link.device):
                        err = Error.from_payload(item.payload)
                        errors[err.code] += 1
                        ended = ended or err.ref == session
            if not ended:
                link.publish(topics.stt_end(link.device), json.dumps({"v": 1, "session": session}).encode())
    return {"attack": "stream-flood", "sessions": sessions, "frames": frames, "errors": dict(errors)}


# --- 200 churning connections on one login ----------------------------------------------------

def _utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([kind]) + bytes(encoded) + body


def _connect_packet(client_id: str, user: str, password: str, will_topic: str, will: bytes) -> bytes:
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02      # user, password, will retain, will QoS 1, will, clean
    variable = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    payload = _utf8(client_id) + _utf8(will_topic) + struct.pack("!H", len(will)) + will + _utf8(user) + _utf8(password)
    return _packet(0x10, variable + payload)


def churn(args) -> dict:
    """`--connections` raw MQTT connections on one login, each reconnecting in turn (the old socket
    dropped without DISCONNECT, so its last will fires) and publishing its retained status, QoS 1."""
    topic = f"hearth/{args.user}/status"
    online = json.dumps({"type": "device-status", "v": 1, "online": True, "firmware": "flood"}).encode()
    offline = json.dumps({"type": "device-status", "v": 1, "online": False}).encode()
    slots: list[socket.socket | None] = [None] * args.connections
    connects = refused = publishes = 0
    packet_id = 0
    deadline = time.monotonic() + args.seconds
    interval = 1.0 / args.rate
    t0 = time.monotonic()
    i = 0
    while running(deadline):
        slot = i % args.connections
        old = slots[slot]
        if old is not None:
            old.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # reset: no DISCONNECT
            old.close()
        try:
            s = socket.create_connection(("127.0.0.1", args.port), timeout=2)
            s.sendall(_connect_packet(f"{args.user}-churn-{slot}-{i}", args.user, args.password, topic, offline))
            ack = s.recv(4)
            if len(ack) < 4 or ack[3] != 0:
                refused += 1
                s.close()
                slots[slot] = None
            else:
                connects += 1
                packet_id = packet_id % 65535 + 1
                s.sendall(_packet(0x33, _utf8(topic) + struct.pack("!H", packet_id) + online))
                s.setblocking(False)
                publishes += 1
                slots[slot] = s
        except OSError:
            refused += 1
            slots[slot] = None
        i += 1
        time.sleep(max(0.0, t0 + i * interval - time.monotonic()))
    for s in slots:
        if s is not None:
            s.close()
    return {"attack": "churn", "connects": connects, "refused": refused, "status_publishes": publishes}


# --- 20 Wyoming clients transcribing 29 s each, as fast as they can ----------------------------

async def _wyoming_client(port: int, pcm: bytes, rate: int, deadline: float, errors, counts) -> None:
    from wyoming.asr import Transcribe
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    chunk = 2048
    while running(deadline):
        try:
            async with AsyncTcpClient("127.0.0.1", port) as c:
                await c.write_event(Transcribe(language="en").event())
                await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                for i in range(0, len(pcm), chunk):
                    if not running(deadline):
                        return
                    await c.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i:i + chunk]).event())
                await c.write_event(AudioStop().event())
                counts["utterances"] += 1
                while running(deadline):
                    event = await asyncio.wait_for(c.read_event(), 1.0)
                    if event is None:
                        break
                    if event.type == "error":
                        errors[event.data.get("code")] += 1
                        break
                    if event.type == "transcript":
                        counts["transcripts"] += 1
                        break
        except asyncio.TimeoutError:
            counts["unanswered"] += 1
        except (OSError, asyncio.IncompleteReadError):
            counts["dropped"] += 1
            await asyncio.sleep(0.05)


def wyoming_flood(args) -> dict:
    pcm, rate = read_pcm(args.wav)
    pcm = (pcm * (int(29 * rate * 2 / max(1, len(pcm))) + 1))[:29 * rate * 2]     # 29 s of speech, looped
    errors: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    deadline = time.monotonic() + args.seconds

    async def main():
        await asyncio.gather(*(_wyoming_client(args.port, pcm, rate, deadline, errors, counts)
                               for _ in range(args.clients)))
    asyncio.run(main())
    return {"attack": "wyoming-flood", "clients": args.clients, **counts, "errors": dict(errors)}


# --- a Mycroft /v1/stt flood from one address -------------------------------------------------

def mycroft_flood(args) -> dict:
    import requests

    with open(args.wav, "rb") as fh:
        body = fh.read()
    statuses: collections.Counter = collections.Counter()
    codes: collections.Counter = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def worker():
        with requests.Session() as http:
            while running(deadline):
                try:
                    r = http.post(f"{args.url}/v1/stt?lang=en-us", data=body, timeout=30,
                                  headers={"Authorization": f"Bearer {args.token}", "Content-Type": "audio/wav"})
                    code = r.json().get("error", "") if r.status_code != 200 else ""
                except (requests.RequestException, ValueError):
                    status, code = "no answer", ""
                else:
                    status = r.status_code
                with lock:
                    statuses[str(status)] += 1
                    if code:
                        codes[code] += 1
                if status != 200:
                    time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"attack": "mycroft-flood", "statuses": dict(statuses), "errors": dict(codes)}


ATTACKS = {"stream-flood": stream_flood, "churn": churn, "wyoming-flood": wyoming_flood, "mycroft-flood": mycroft_flood}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.attacks")
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--wav", default="")
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--rate", type=float, default=200.0, help="churn: reconnects per second")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--url", default="")
    p.add_argument("--token", default="")
    p.add_argument("--threads", type=int, default=8)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: _stop.set())
    print(json.dumps(ATTACKS[args.attack](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
