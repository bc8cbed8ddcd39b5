"""Wake word for Hermes satellites that stream audio: `hermes/hotword/<wakewordId>/detected`.

Detection runs on its own thread (the network thread only enqueues), with the wake module's
models through appliance/compat/wake_detect.py. `hermes/hotword/toggleOff|toggleOn` pause and
resume a site, as Rhasspy's dialogue manager expects. `[hermes] wake = false` leaves the wake
word to the satellites themselves.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from mqtt import hermes as h

log = logging.getLogger(__name__)


class HermesWake:
    def __init__(self, service, edge, wake):
        self.edge = edge
        self.wake = wake
        self.sensitivity = service.settings.wake.sensitivity
        self.off: set[str] = set()                       # sites toggled off
        self.detectors: dict = {}                        # site -> StreamDetector (wake thread only)
        self._queue: queue.Queue = queue.Queue(maxsize=5000)
        self.metrics = service.metrics
        self._thread = threading.Thread(target=self._run, name="hermes-wake", daemon=True)
        self._thread.start()

    # network thread
    def wants(self, site: str) -> bool:
        return site not in self.off

    def toggle(self, site: str, on: bool) -> None:
        (self.off.discard if on else self.off.add)(site)

    def feed(self, site: str, pcm: bytes) -> None:
        if site in self.off:
            return
        try:
            self._queue.put_nowait((site, pcm))
        except queue.Full:
            self.metrics.inc("hearth_hermes_wake_frames_dropped_total")

    # the wake thread
    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            site, pcm = item
            try:
                detector = self.detectors.get(site)
                if detector is None:
                    detector = self.detectors[site] = self.wake.detector()
                for name, _ms in detector.feed(pcm):
                    self.edge.hotword_at[site] = time.monotonic()
                    self.edge.publish(h.hotword_detected(name), h.HotwordDetected(
                        model_id=name, model_version="", model_type="universal",
                        current_sensitivity=self.sensitivity, site_id=site).to_payload())
            except Exception:
                log.exception("wake word detection failed for Hermes site %s", site)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        for detector in self.detectors.values():
            detector.close()


def install(service, edge) -> None:
    if not service.settings.hermes.wake:
        return
    from appliance.compat import wyoming_wake
    wake = wyoming_wake.adapter(service)
    if wake is None:
        log.info("no wake-word module: Hermes satellites use their own wake word")
        return
    edge.wake = HermesWake(service, edge, wake)
