"""Open files: the listeners' caps leave room for Hearth's own files, whatever `ulimit -n` says, and
the broker is told to refuse connections before it runs out of files."""

from __future__ import annotations

import resource

from appliance.process import descriptors
from appliance.state.config import Settings
from mqtt.broker import BrokerConfig


def test_caps_that_fit_are_kept():
    s = Settings()
    assert descriptors.fit(s, 4096) is s


def test_caps_past_the_limit_are_lowered_to_leave_the_reserve():
    s = Settings()
    small = descriptors.fit(s, 400)
    total = small.web.max_connections + small.wyoming.max_connections
    assert total <= 400 - descriptors.RESERVED
    assert small.web.max_connections_per_address <= small.web.max_connections
    assert small.wyoming.max_connections_per_address <= small.wyoming.max_connections
    assert small.broker == s.broker and small.stt == s.stt          # nothing else changes


def test_the_broker_refuses_connections_before_its_files_run_out(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        conf = BrokerConfig(tmp_path, port=1999, max_connections=4000).render()
        assert "max_connections 960" in conf
        assert "max_connections 500" in BrokerConfig(tmp_path, port=1999, max_connections=500).render()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
