"""The appliance's packet filter (image/mkosi/mkosi.extra/usr/lib/hearth/hearth.nft) against 1,100
silent connections from one address to the broker: a device from another address still connects
and its message goes through; the attacker holds at most 32 connections.

The filter is loaded, unchanged except for its loopback exemption, into a network namespace of
this test's own (`unshare --net`: nothing outside it is touched, all traffic is its loopback),
with a real Mosquitto under the open-file limit Hearth's checkout gets (1,024). Positive control:
the same flood without the filter locks the device out. Needs root, nft and unshare.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.image, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent.parent
RULES = ROOT / "image/mkosi/mkosi.extra/usr/lib/hearth/hearth.nft"

# runs inside the namespace: prints one JSON line
SCRIPT = r'''
import json, os, resource, socket, subprocess, sys, time
import paho.mqtt.client as mqtt
filtered = sys.argv[1] == "filtered"
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
if filtered:
    subprocess.run(["nft", "-f", sys.argv[2]], check=True)
conf = sys.argv[3]
broker = subprocess.Popen(["mosquitto", "-c", conf], stderr=subprocess.DEVNULL,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
time.sleep(0.5)
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
# paho's loop uses select(), which takes no descriptor past 1,023: keep low ones free for the device
spare = [os.open("/dev/null", os.O_RDONLY) for _ in range(32)]
socks = []
for _ in range(1100):
    s = socket.socket(); s.setblocking(False); s.bind(("127.0.0.66", 0))
    try: s.connect(("127.0.0.1", 1883))
    except BlockingIOError: pass
    socks.append(s)
time.sleep(5)
held = 0
for s in socks:
    try:
        s.getpeername(); held += 1
    except OSError:
        pass
for fd in spare: os.close(fd)
got = []
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="device")
c.on_message = lambda cl, u, m: got.append(m.payload)
connected = False
try:
    c.connect("127.0.0.1", 1883, keepalive=10)
    c.loop_start()
    end = time.monotonic() + 10
    while time.monotonic() < end and not c.is_connected(): time.sleep(0.05)
    connected = c.is_connected()
    if connected:
        c.subscribe("hearth/device/x", qos=1); time.sleep(0.3)
        c.publish("hearth/device/x", b"hello", qos=1)
        end = time.monotonic() + 5
        while time.monotonic() < end and not got: time.sleep(0.05)
    c.loop_stop(); c.disconnect()
except OSError as exc:
    connected = False
for s in socks: s.close()
broker.terminate(); broker.wait(10)
print(json.dumps({"held": held, "connected": connected, "delivered": got == [b"hello"]}))
'''


def run_in_namespace(tmp: Path, filtered: bool) -> dict:
    rules = tmp / "hearth.nft"
    # the image exempts loopback (Hearth's own client); here everything is loopback, so that line goes
    rules.write_text(RULES.read_text().replace("\t\tiif lo accept\n", ""))
    conf = tmp / "mosquitto.conf"
    conf.write_text("listener 1883 127.0.0.1\nallow_anonymous true\nlog_dest none\n")
    script = tmp / "flood.py"
    script.write_text(SCRIPT)
    out = subprocess.run(["unshare", "--net", sys.executable, str(script), "filtered" if filtered else "open",
                          str(rules), str(conf)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_1100_idle_connections_from_one_address_leave_a_device_able_to_connect(tmp_path):
    # ./build.sh test-image runs as root and installs nftables: a missing tool fails, never skips
    assert os.geteuid() == 0 and shutil.which("nft") and shutil.which("unshare") \
        and shutil.which("mosquitto", path="/usr/sbin:/usr/bin"), "needs root, nft, unshare and mosquitto"
    assert "iif lo accept" in RULES.read_text()           # the image never limits Hearth's own connection
    filtered = run_in_namespace(tmp_path, filtered=True)
    print(f"with the filter: {filtered}")
    assert filtered["held"] <= 32 and filtered["connected"] and filtered["delivered"]
    unfiltered = run_in_namespace(tmp_path, filtered=False)          # positive control: the flood is real
    print(f"without: {unfiltered}")
    assert unfiltered["held"] > 900 and not unfiltered["connected"]
