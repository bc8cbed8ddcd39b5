"""The `hearth` command: parse arguments, build one Settings, hand over. Errors end as one
`Error: ...` line and exit status 1."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from appliance.commands import admin_cli, broker_cmd, satellite_cli

from appliance.state import config, storage
from appliance.compat import hermes_cli
from appliance.datasets import cli as data_cli
from appliance.devices import cli as devices_cli
from appliance.helpers import cli as helper_cli
from appliance.helpers import list_cli as helpers_cli
from appliance.support import cli as support_cli
from appliance.update import cli as update_cli
from firmware_cache import cli as firmware_cli

COMMANDS = """\
  hearth run                       start Mosquitto + the service + the web page (what ./build.sh run does)
  hearth serve                     the service + web page only (Mosquitto runs separately, e.g. under systemd)
  hearth broker                    Mosquitto alone, supervised by Hearth (the appliance's broker unit)
  hearth setup                     prepare the data directory (config, broker logins and files); idempotent
  hearth client say TEXT --out F   ask the running Hearth to speak TEXT, write a WAV
  hearth client transcribe F.wav   send a WAV as a device would, print the transcript
  hearth client satellite --wav F  stream a WAV as a wake word satellite, print detections, transcript, reply
  hearth config                    print the effective configuration as TOML
  hearth devices list|pair CODE|rename ID NAME|revoke ID   the household's devices (docs/devices.md)
  hearth helper join URL | run     lend this machine's engines to a box (docs/helpers.md)
  hearth helpers                   the helpers lending this box their engines
  hearth support bundle [--out F]  one archive for whoever helps you troubleshoot (no secrets inside)
  hearth update status|install FILE|confirm   update the appliance from a signed bundle (docs/appliance.md)
  hearth data import PATH|list|remove NAME     datasets from other households, checked and kept apart (docs/web.md)
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearth", description="Hearth, a personal voice server.",
                                epilog=COMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="config file (default: <data dir>/hearth.toml, or $HEARTH_CONFIG)")
    p.add_argument("--data", help="data directory (default: $HEARTH_DATA, ./var in a checkout, /var/lib/hearth)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="start Mosquitto, the service and the web page")
    sub.add_parser("serve", help="start the service and web page (broker managed elsewhere)")
    sub.add_parser("setup", help="prepare the data directory")
    sub.add_parser("config", help="print the effective configuration")

    client = sub.add_parser("client", help="try Hearth as a device would").add_subparsers(dest="client_command", required=True, metavar="ACTION")
    for name, helptext in (("say", "speak TEXT and write a WAV"), ("transcribe", "transcribe a WAV file")):
        c = client.add_parser(name, help=helptext)
        c.add_argument("--broker", help="mqtt://USER:PASSWORD@HOST:PORT (default: the local Hearth in the data directory)")
        c.add_argument("--timeout", type=float, default=60.0)
        if name == "say":
            c.add_argument("text")
            c.add_argument("--out", required=True, help="WAV file to write")
            c.add_argument("--voice", help="voice name (default: the configured voice)")
        else:
            c.add_argument("wav")
            c.add_argument("--endpoint", choices=("device", "vad"), default="device",
                           help="device: end after the file; vad: let Hearth detect the end of speech")
            c.add_argument("--realtime", action="store_true",
                           help="send audio at the speed of speech (default: as fast as Hearth accepts audio)")
            c.add_argument("--partials", action="store_true", help="print partial transcripts to stderr")
    for action in CLIENT_ACTIONS:
        action.add_parser(client)
    for extension in EXTENSIONS:
        extension.add_parser(sub)
    return p


# other rooms' commands: modules with add_parser(subparsers) and run(args, settings) -> int | None
EXTENSIONS: list = [devices_cli, firmware_cli, admin_cli, hermes_cli, support_cli, broker_cmd, update_cli, helper_cli, helpers_cli, data_cli]
# more `hearth client ACTION`s: modules with COMMAND, add_parser(client_subparsers) and run(args, settings)
CLIENT_ACTIONS: list = [satellite_cli]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet = args.command in ("client", "config")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    data_dir = Path(args.data) if args.data else config.default_data_dir()
    try:
        settings = config.load(args.config, Path(args.data) if args.data else None)
        data_dir = settings.data_dir
        return dispatch(args, settings) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if storage.no_space(exc) and not isinstance(exc, storage.StorageError):
            exc = storage.disk_full(data_dir.resolve())     # one line naming the disk, not "[Errno 28]"
        if args.verbose or not _expected(exc):
            logging.getLogger("hearth").exception("failed")
        print(f"Error: {exc}", file=sys.stderr)
        return 1


def _expected(exc: Exception) -> bool:
    from appliance.commands.client import ClientError
    from appliance.helpers.join import JoinError
    from appliance.state.integrity import Unrepairable
    from appliance.commands.runner import AlreadyRunning
    from appliance.datasets.checks import DatasetRefused
    from appliance.state.store import DatabaseDamaged
    from appliance.stt.engines import SttError
    from appliance.support.channel import ServiceRefused
    from appliance.support.redact import SecretInBundle
    from appliance.tts.voices import VoiceError
    from mqtt.broker import BrokerError
    from mqtt.client import MqttError
    return isinstance(exc, (config.ConfigError, ClientError, JoinError, AlreadyRunning, SttError, VoiceError,
                            BrokerError, MqttError, OSError, ValueError, ServiceRefused, SecretInBundle,
                            DatabaseDamaged, Unrepairable, DatasetRefused))


def dispatch(args, settings: config.Settings) -> int:
    match args.command:
        case "run" | "serve":
            from appliance.commands import runner
            manage = settings.broker.manage if args.command == "run" else False
            return runner.run(settings, manage_broker=manage)
        case "setup":
            from appliance.commands import runner
            from appliance.service import Service
            runner.setup(settings)
            service = Service(settings)
            service.accounts.ensure()
            service.sync_broker_files()
            print(f"data directory ready: {settings.data_dir}")
            from appliance.state.admin import AdminPassword, first_password_note
            if note := first_password_note(AdminPassword(settings.data_dir)):
                print(note)          # the appliance's first boot shows this on the console
            return 0
        case "config":
            print(config.to_toml(settings), end="")
            return 0
        case "client":
            return client_command(args, settings)
    for extension in EXTENSIONS:
        if getattr(extension, "COMMAND", None) == args.command:
            return extension.run(args, settings) or 0
    raise ValueError(f"unknown command {args.command}")


def client_command(args, settings: config.Settings) -> int:
    from appliance.commands import client
    from appliance.audio.pcm import read_wav

    for action in CLIENT_ACTIONS:
        if action.COMMAND == args.client_command:
            return action.run(args, settings) or 0
    creds = client.credentials(settings, args.broker)
    if args.client_command == "say":
        with client.DeviceLink(creds) as link:
            spoken = client.say(link, args.text, args.voice, args.timeout)
        client.write_wav(args.out, spoken)
        print(f"wrote {args.out}: {len(spoken.pcm) / 2 / spoken.rate:.2f} s of audio at {spoken.rate} Hz "
              f"(first audio after {spoken.first_audio_s * 1000:.0f} ms, whole reply {spoken.total_s * 1000:.0f} ms)")
        return 0
    wav = read_wav(args.wav)
    on_partial = (lambda text: print(f"... {text}", file=sys.stderr)) if args.partials else None
    with client.DeviceLink(creds) as link:
        heard = client.transcribe(link, wav, args.endpoint, realtime=args.realtime,
                                  timeout=args.timeout, on_partial=on_partial)
    print(heard.final.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
