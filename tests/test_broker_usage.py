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
