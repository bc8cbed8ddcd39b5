"""The wiring: build every long-lived part once, pass it in, start, stop.

Engines load here at start-up (never per request); the MQTT connection, the store, the web server
and the protocol edges are built here and handed to whatever needs them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable

from paho.mqtt.client import topic_matches_sub

from appliance.datasets import room as datasets_room
from appliance.devices import room as devices_room
from appliance.helpers import room as helpers_room
from appliance.compat import discovery, hermes, wyoming_server
from appliance.process import control, logbuffer
from appliance.state import admin
from appliance.state.recovery import RecoveryService
from appliance.state.accounts import LocalAccounts
from appliance.process.chores import Chores
from appliance.state.config import Settings
from appliance.process.control import ServiceLock
from appliance.devices.registry import Registry
from appliance.voice.inbound import Inbound
from appliance.state.integrity import Integrity
from appliance.process.broker import broker_config
from appliance.process.metrics import Metrics
from appliance.voice.outbound import Replies
from appliance.process.retained import Sweeper
from appliance.voice.sessions import SessionManager
from appliance.state.storage import Disk
from appliance.state.store import Store
from appliance.stt.decoder import Decoder
from appliance.stt import choice
from appliance.stt.engines import fallback_engine, load_engine, partial_engine, uses_cuda
from appliance.stt.vocabulary import Vocabulary
from appliance.tts.cache import PhraseCache
from appliance.tts.speaker import Speaker
from appliance.tts.voices import Voices
from appliance.update import room as updates_room
from appliance.voice import review, utterances
from appliance.wake import satellites
from firmware_cache import room as firmware_room
from appliance.version import VERSION
from mqtt import topics
from mqtt.broker import READER_USER, SERVICE_USER, Account, write_files
from mqtt.client import Connection, Credentials
from mqtt.messages import ServerInfo
from web import device_api, firmware_routes
from web.recovery_page import build_app as recovery_app
from web.server import WebServer

log = logging.getLogger(__name__)





class Service:
    """Hearth's one process: voice pipeline, device edges, web page."""

    def __init__(self, settings: Settings, reload_broker: Callable[[], None] | None = None):
        self.settings = settings
        self.started = time.time()
        self.reload_broker = reload_broker or self._reload_by_pidfile
        self.metrics = Metrics()
        self.accounts = LocalAccounts(settings.data_dir)
        self.disk = Disk(settings.data_dir, lambda: self.settings.storage.reserve_mb)
        # quick_check before the Store opens the file; a damaged one is restored from a snapshot
        # (or Unrepairable is raised: `hearth run` then starts the recovery page)
        self.integrity = Integrity(settings, self.metrics)
        self.repair = self.integrity.prepare()
        self.store = Store(settings.data_dir / "hearth.db")
        # more broker logins (devices, Hermes) come from these providers
        # the device registry's logins are here from the start, so the broker knows them before the
        # engines load (and `hearth setup` keeps them)
        self.account_providers: list[Callable[[], list[Account]]] = [self.accounts.broker_accounts,
                                                                     Registry(self.store).broker_accounts]
        self._stoppers: list[Callable[[], None]] = []
        self.conn: Connection | None = None
        self.reports: Connection | None = None
        self.startup_notes: list[str] = []     # lines `hearth run` prints once (e.g. a new admin password)
        if self.repair:
            self.startup_notes.append(f"registry restored: {self.repair.describe()}")
        # what the rooms add in their install(service) (install_rooms): topics to subscribe, web routes, hooks
        self.subscriptions: list[str | tuple[str, int]] = list(topics.SUBSCRIPTIONS)   # bare: read at QoS 0
        # devices' reports that may come in floods and wait a moment (firmware state/progress/result):
        # read on a second connection, so a flood fills only that connection's queue at the broker,
        # never the one that carries audio and control messages
        self.report_subscriptions: list[str] = []
        self.web_installers: list[Callable] = []      # fn(app: bottle.Bottle) -> None
        self.after_connect: list[Callable[[], None]] = []   # on every (re)connect to the broker
        self.after_start: list[Callable[[], None]] = []
        # one writer per data directory: held from start to stop (appliance/process/control.py)
        self.writer_lock = ServiceLock(settings.data_dir)

    # broker auth
    def sync_broker_files(self) -> None:
        """Write Mosquitto's config, password file and ACL from every account provider."""
        accounts = [a for provider in self.account_providers for a in provider()]
        write_files(broker_config(self.settings), accounts)

    def sync_broker(self) -> None:
        """Rewrite the broker's files and make it re-read them (SIGHUP), e.g. after a device change."""
        self.sync_broker_files()
        self.reload_broker()
        if hasattr(self, "vocabulary"):
            self.refresh_vocabulary()      # a device named or moved to a room: its name is a household word

    def _reload_by_pidfile(self) -> None:
        pid_file = self.settings.data_dir / "broker" / "mosquitto.pid"
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError):
            log.warning("could not signal the broker to reload (%s)", pid_file)

    # the voice pipeline
    def build_voice(self) -> None:
        s = self.settings
        t0 = time.perf_counter()
        self.voices = Voices(s.tts, use_cuda=s.stt.engine == "faster-whisper" and uses_cuda(s.stt))
        self.stt_choice = None
        stt = s.stt
        if stt.engine == "faster-whisper" and stt.model in choice.AUTO:
            self.stt_choice = choice.current(stt, s.data_dir, self.timing_clip)
            stt = dataclasses.replace(stt, model=self.stt_choice.model)
            self.startup_notes.append(f"speech-to-text: {self.stt_choice.model}, {self.stt_choice.reason}")
        self.engine = load_engine(stt)
        self.decoder = Decoder(self.engine, s.limits.max_queue, s.limits.max_queue_per_client,
                               partial_engine=partial_engine(stt, self.engine),
                               fallback=fallback_engine(stt, self.engine))
        self.local_decoder = self.decoder        # the box's own (the helpers' dispatcher may stand in front of it)
        if getattr(self.engine, "fallback", ""):
            self.startup_notes.append(f"speech-to-text: {self.engine.fallback}")
        self.vocabulary = Vocabulary(self.store)
        self.refresh_vocabulary()
        self.phrase_cache = PhraseCache(s.data_dir / "tts-cache", s.tts.cache_entries)
        self.replies = Replies(self._publish)
        self.chores = Chores(self.replies.error)       # slow work off the network and audio threads
        self.sessions = SessionManager(s, self.decoder, self.replies, self.metrics)
        self.sessions.defer = self.chores.run
        self.speaker = Speaker(s.tts, self.voices, self.phrase_cache, self.metrics, self.replies,
                               per_client=s.limits.max_replies_per_client)
        self.inbound = Inbound(self.sessions, self.speaker, self.replies, self.metrics, s.limits.max_json_bytes)
        self._stoppers += [self.speaker.stop, self.sessions.stop, self.decoder.stop, self.chores.stop]
        log.info("engines loaded in %.1f s: stt %s (%s), tts %s", time.perf_counter() - t0,
                 self.engine.name, self.engine.model, s.tts.voice)

    def timing_clip(self) -> bytes:
        """The spoken command each model is timed on (appliance/stt/choice.py)."""
        return choice.timing_clip(self.voices.get(None), self.voices.info(None).rate)

    def refresh_vocabulary(self) -> None:
        """Hand the household's words (the list, device and room names) to every engine that decodes."""
        words = self.vocabulary.prompt_words(Registry(self.store).list())
        for engine in (self.engine, self.local_decoder.partial_engine):
            if engine is not None and hasattr(engine, "set_vocabulary"):
                engine.set_vocabulary(words)

    def _publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self.conn is not None:
            self.conn.publish(topic, payload, qos, retain)

    def server_info(self, online: bool = True) -> ServerInfo:
        return ServerInfo(version=VERSION, online=online, stt_engine=self.engine.name,
                          voices=sorted(self.voices.available))

    def connect(self) -> None:
        login = self.accounts.login(SERVICE_USER)
        creds = Credentials(self.settings.broker.host, self.settings.broker.port, login.username, login.password)
        offline = self.server_info(online=False).to_payload()
        # the broker names a login's connection after the login (use_username_as_clientid); where it
        # cannot (Hermes on), this id is random, so no other login can take it over
        # Everything the service reads is read at QoS 0. Mosquitto keeps at most max_queued_messages
        # (1,000) QoS 1 messages waiting for a subscriber and drops the rest: one device flooding its
        # own control topics at QoS 1 made it drop messages bound for the service, other devices'
        # stt/end and tts/say among them (tests/abuse/test_abuse_control_flood.py). The service's
        # session is clean and on the same box, so QoS 1 bought nothing here: nothing is kept for it
        # while it is away, and TCP already delivers what is sent on a live loopback connection.
        self.conn = Connection(creds, self.inbound, self.subscriptions, client_id=f"hearth-{secrets.token_hex(12)}",
                               will=(topics.server_info(), offline, 1, True),
                               on_connected=self._announce, read_qos=0)
        self.conn.start()
        reader = self.accounts.login(READER_USER)
        self.retained = Sweeper(self._publish, self.metrics, self.settings.limits.max_json_bytes)
        self.reports = Connection(Credentials(creds.host, creds.port, reader.username, reader.password),
                                  self._on_report, self.report_subscriptions,
                                  client_id=f"hearth-{secrets.token_hex(12)}", read_qos=0,
                                  on_retained=self.retained.on_retained).start()
        self.retained.start(self.reports)
        self._stoppers.insert(0, self._disconnect)

    def _on_report(self, topic: str, payload: bytes) -> None:
        """The report connection: its own topics go in; what a retained sweep brought in live, not."""
        if any(topic_matches_sub(sub, topic) for sub in self.report_subscriptions):
            self.inbound(topic, payload)

    def _announce(self) -> None:
        self._publish(topics.server_info(), self.server_info().to_payload(), 1, True)
        for hook in self.after_connect:
            hook()

    def _disconnect(self) -> None:
        if self.reports:
            self.retained.stop()
            self.reports.stop()
        if self.conn:
            self._publish(topics.server_info(), self.server_info(online=False).to_payload(), 1, True)
            self.conn.stop()

    def install_rooms(self) -> None:
        """The rooms beyond the voice core, in order: each install(service) adds its subscriptions,
        inbound handlers, control actions and hooks before the broker connection."""
        control.install(self)              # first: the other rooms register their commands on it
        devices_room.install(self)
        helpers_room.install(self)         # after the devices (helpers pair as devices), before whatever uses the decoder
        firmware_room.install(self)
        updates_room.install(self)         # after the firmware cache: it offers hearth-appliance releases from it
        admin.install(self)
        logbuffer.install(self)
        utterances.install(self)
        review.install(self)               # after utterances: reviews what they stored
        datasets_room.install(self)
        satellites.install(self)
        hermes.install(self)
        wyoming_server.install(self)
        discovery.install(self)
        # what the rooms serve on the web page: installed here, at the edge (web/ imports the rooms, never the reverse)
        self.web_installers += [lambda app: device_api.install(app, self),
                                lambda app: firmware_routes.install(app, self.firmware)]

    def start_web(self) -> None:
        self.web = WebServer(self)
        self.web.start()
        self._stoppers.insert(0, self.web.stop)

    def start(self) -> None:
        self.writer_lock.acquire(f"hearth service ({self.settings.data_dir})")
        self.accounts.ensure()
        self.build_voice()
        self.install_rooms()
        self.connect()
        self.start_web()
        self.integrity.start(self.store)
        self._stoppers.append(self.integrity.stop)
        for hook in self.after_start:
            hook()

    def healthy(self) -> bool:
        """What the watchdog checks: the broker connection is up and every worker thread still runs."""
        threads = [self.decoder._thread, self.sessions._thread, self.speaker._thread, self.chores._thread]
        web = getattr(self, "web", None)
        if web is not None:
            threads.append(web._thread)
        return bool(self.conn and self.conn.connected.is_set()) and all(t.is_alive() for t in threads)

    def stop(self) -> None:
        for stop in self._stoppers:
            try:
                stop()
            except Exception:
                log.exception("stopping %s failed", stop)
        self._stoppers.clear()
        self.store.close()
        self.writer_lock.release()


def recovery_service(settings: Settings, damage: Exception) -> RecoveryService:
    """Recovery mode's wiring: the registry is damaged beyond repair; the recovery page comes up alone."""
    return RecoveryService(settings, damage, lambda recovery: WebServer(recovery, app=recovery_app(recovery)))
