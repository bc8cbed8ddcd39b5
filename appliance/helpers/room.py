"""Wiring the helpers into the running service (appliance/service.py install_rooms): the Dispatcher
in front of the decoder, the Roster, the jobs protocol announcement."""

from __future__ import annotations

import logging
import threading

from appliance.helpers.dispatch import Dispatcher
from appliance.helpers.roster import Roster
from mqtt import jobs as wire
from mqtt.messages import ProtocolError

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 0.5


def known_helpers(devices) -> dict[str, str]:
    return {d.id: d.name for d in devices.list() if d.device_type == wire.HELPER_TYPE and d.activated_at}


def install(service) -> Dispatcher:
    devices = service.devices
    roster = Roster(lambda: known_helpers(devices))
    local = service.decoder
    dispatcher = Dispatcher(local, roster, lambda: service.settings.helpers, service._publish, service.metrics,
                            online=lambda: bool(service.conn and service.conn.connected.is_set()))
    service.decoder = service.sessions.decoder = dispatcher
    service.helpers = dispatcher
    devices.on_activated.append(lambda device: roster.refresh())   # known before its first offer arrives
    max_json = service.settings.limits.max_json_bytes

    service.subscriptions += [t for t in wire.SUBSCRIPTIONS if t not in service.subscriptions]
    service.after_connect.append(lambda: service._publish(wire.info(), wire.JobsInfo().to_payload(), 1, True))

    def on_offer(helper, ref, payload):
        if not roster.is_helper(helper):
            return                      # a device's own topic: not ours to read
        if not payload:
            roster.on_offer(helper, None)
            return
        try:
            offer = wire.HelperOffer.from_payload(payload, max_json)
            roster.on_offer(helper, offer)
            if offer.online:
                dispatcher.offered(helper)
        except ProtocolError as exc:
            roster.on_offer(helper, None, problem=f"{exc.code}: {exc.message}")
            dispatcher.bad_message(helper)
            raise                       # the helper hears why on hearth/<helper>/error

    def answer(kind):
        def handle(helper, ref, payload):
            if not roster.is_helper(helper):
                return
            try:
                msg = kind.from_payload(payload, max_json)
            except ProtocolError:
                dispatcher.bad_message(helper)      # garbage is counted, never answered: floods stay one-way
                return
            (dispatcher.on_taken if kind is wire.JobTaken else dispatcher.on_result)(helper, msg)
        return handle

    service.inbound.extra["helper/offer"] = on_offer
    service.inbound.extra["helper/taken"] = answer(wire.JobTaken)
    service.inbound.extra["helper/result"] = answer(wire.JobResult)
    service.metrics.gauge("hearth_helpers_online", lambda: sum(1 for h in roster.list() if h["online"]))
    service.control.register("helpers.list", lambda params: roster.list())

    stop = threading.Event()

    def watch():
        seen = -1
        while not stop.wait(WATCH_INTERVAL_S):
            try:
                generation = devices.registry.generation()
                if generation != seen:
                    seen = generation
                    for gone in roster.refresh():      # revoked: its retained offer goes too
                        service._publish(wire.offer(gone), b"", 1, True)
            except Exception:
                log.exception("reading the helpers from the registry failed")

    watcher = threading.Thread(target=watch, name="helpers-watch", daemon=True)
    service.after_start.append(watcher.start)
    service._stoppers.insert(0, lambda: (stop.set(), dispatcher.stop()))
    return dispatcher
