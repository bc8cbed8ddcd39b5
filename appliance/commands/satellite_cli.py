"""`hearth client satellite --wav FILE`: try wake word, arbitration and replies without hardware."""

from __future__ import annotations

COMMAND = "satellite"


def add_parser(client_subparsers) -> None:
    c = client_subparsers.add_parser(COMMAND, help="stream a WAV as a satellite microphone would, print what comes back")
    c.add_argument("--wav", required=True, help="WAV file, e.g. 'Hey Mycroft, what time is it?'")
    c.add_argument("--broker", help="mqtt://USER:PASSWORD@HOST:PORT (default: the local Hearth in the data directory)")
    c.add_argument("--room", help="room for arbitration (devices in one room compete for a wake word)")
    c.add_argument("--engine", choices=("openwakeword", "microwakeword"), help="wake word engine (default: [wake] engine)")
    c.add_argument("--model", help="wake word model (default: [wake] model)")
    c.add_argument("--sensitivity", type=float, help="0..1, higher triggers more easily")
    c.add_argument("--tail", type=float, default=3.0, help="seconds of silence streamed after the file")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply after the audio")


def run(args, settings) -> int:
    from appliance.commands import client, satellite
    from appliance.audio.pcm import read_wav

    wav = read_wav(args.wav)
    creds = client.credentials(settings, args.broker)
    options = {k: v for k, v in (("room", args.room), ("engine", args.engine), ("model", args.model),
                                 ("sensitivity", args.sensitivity)) if v is not None}
    with client.DeviceLink(creds, will=satellite.last_will(creds.username)) as link:
        heard = satellite.run(link, wav, tail_s=args.tail, settle_s=args.timeout,
                              on_event=lambda kind, msg: print(satellite.describe(kind, msg), flush=True), **options)
    if heard.reply_audio:
        print(f"reply: {heard.reply_audio / 2:.0f} samples of audio")
    if not heard.of("detected"):
        print("no wake word detected")
    return 0
