"""/health and /metrics show what the broker holds: its memory and its persistence file. A device
storing retained messages under its own topics (allowed by the ACL) makes both visible there."""

from __future__ import annotations

import re
import time

import requests

from mqtt.client import Connection


def test_health_and_metrics_show_the_brokers_memory_and_a_retained_fill(hearth):
    before = requests.get(f"{hearth.web_url}/health", timeout=5).json()["broker_usage"]
    assert before["memory_bytes"] and before["memory_bytes"] > 1 << 20 and before["db_bytes"] >= 0
    filler = Connection(hearth.credentials("retained-filler"), lambda t, p: None).start()
    try:
        for i in range(40):                                    # 40 x 256 KiB retained under its own topics
            filler.publish(f"hearth/retained-filler/junk/{i}", b"x" * (256 << 10), 1, True)
        end = time.monotonic() + 10
        grown = before
        while time.monotonic() < end and grown["memory_bytes"] - before["memory_bytes"] < 8 << 20:
            time.sleep(0.2)
            grown = requests.get(f"{hearth.web_url}/health", timeout=5).json()["broker_usage"]
        assert grown["memory_bytes"] - before["memory_bytes"] >= 8 << 20, (before, grown)
        metrics = requests.get(f"{hearth.web_url}/metrics", timeout=5).text
        assert int(float(re.search(r"^hearth_broker_memory_bytes (\S+)$", metrics, re.M)[1])) >= grown["memory_bytes"] // 2
        assert re.search(r"^hearth_broker_db_bytes \d", metrics, re.M)
    finally:
        for i in range(40):
            filler.publish(f"hearth/retained-filler/junk/{i}", b"", 1, True)
        filler.stop()


def _retained(hearth, pattern: str, wait_s: float = 1.0) -> dict[str, int]:
    """Topic -> size of every retained message under `pattern`, as a new subscriber gets them."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from mqtt.broker import Account, hash_password, new_password
    password = new_password()                  # a read-everything login, as the service's report connection has
    hearth.test_accounts["retained-probe"] = Account("retained-probe", hash_password(password), "reader")
    hearth.service.sync_broker()
    got: dict[str, int] = {}
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="retained-probe")
    c.username_pw_set("retained-probe", password)
    c.on_message = lambda _c, _u, m: got.__setitem__(m.topic, len(m.payload)) if m.retain else None
    c.connect("127.0.0.1", hearth.settings.broker.port)
    c.loop_start()
    time.sleep(0.3)
    c.subscribe(pattern, qos=0)
    time.sleep(wait_s)
    c.loop_stop()
    c.disconnect()
    return got


def test_retained_messages_no_device_may_keep_are_cleared(hearth):
    from appliance.process.retained import keep
    filler = Connection(hearth.credentials("retained-filler2"), lambda t, p: None).start()
    status = b'{"type":"device-status","v":1,"online":true}'
    try:
        filler.publish("hearth/retained-filler2/status", status, 1, True)                 # allowed: kept
        filler.publish("hearth/retained-filler2/firmware/state", b"x" * (100 << 10), 1, True)   # allowed topic, too big
        for i in range(30):
            filler.publish(f"hearth/retained-filler2/junk/{i}", b"x" * (256 << 10), 1, True)
        time.sleep(0.5)
        # the probe is the admin's view: hearth's own login reads everything
        assert len(_retained(hearth, "hearth/retained-filler2/#")) == 32               # positive control: stored
        hearth.service.retained.sweep()
        time.sleep(0.5)
        left = _retained(hearth, "hearth/retained-filler2/#")
        assert left == {"hearth/retained-filler2/status": len(status)}, left
        assert hearth.service.metrics.counters["hearth_retained_cleared_total"] >= 31
        ours = _retained(hearth, "hearth/server/#")                                      # the service's own stay
        assert "hearth/server/info" in ours
        assert keep("hearth/x/settings", 100, 4096) and not keep("hearth/x/junk", 10, 4096)
        assert keep("hearth/x/firmware/offer", 20000, 4096) and not keep("hearth/x/status", 20000, 4096)
    finally:
        filler.stop()
