"""`hearth broker`: Mosquitto under Hearth's supervisor, in the foreground (the appliance's
hearth-mosquitto unit). `hearth run` does the same inside its own process.

The persistence file is checked by Mosquitto itself before every start (a bad one is moved
aside), a dead broker is restarted with backoff, SIGHUP re-reads the password file and ACL, and
Mosquitto's log goes to stdout (the journal) without the connection chatter.
"""

from __future__ import annotations

import signal
import threading

from appliance.state.config import Settings

COMMAND = "broker"


def add_parser(subparsers) -> None:
    subparsers.add_parser(COMMAND, help="run Mosquitto under Hearth's supervisor (the appliance's broker unit)")


def run(args, settings: Settings) -> int:
    from appliance.process.broker import die_with_parent
    from appliance.process.broker import broker_config
    from mqtt.broker_log import stdout_sink
    from mqtt.supervisor import BrokerSupervisor

    supervisor = BrokerSupervisor(broker_config(settings), settings.broker.mosquitto,
                                  preexec=die_with_parent, sink=stdout_sink)
    stop = threading.Event()

    def on_signal(*_) -> None:
        stop.set()
        supervisor.stopping()       # the unit's stop signals the broker too: never restart it now

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda *_: supervisor.reload())
    supervisor.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        supervisor.stop()
    return 0
