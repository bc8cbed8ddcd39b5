"""The writer that test_faults_power_cut.py kills with SIGKILL: Hearth's own write paths in a loop
(pairing through appliance.devices, per-device settings, the config file through appliance.state.live,
registry snapshots through appliance.state.integrity), printing one line per write once it has returned.

    python faults_writer.py DATA_DIR

reads "SEED AFTER_S" lines on stdin; for each it forks a fresh writer process (the imports are paid
once, here), lets it write for AFTER_S seconds after it opened the registry, kills it with SIGKILL
and answers "<n>\n" followed by the n bytes the writer printed (its last line may be cut short).
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from appliance.state import config, live
from appliance.devices.manager import Devices
from appliance.state.integrity import Integrity
from appliance.process.metrics import Metrics
from appliance.state.store import Store


def main(data: Path, seed: int) -> None:
    settings = config.load(None, data)
    store = Store(data / "hearth.db")
    devices = Devices(store, settings)
    integrity = Integrity(settings, Metrics())
    integrity._store = store
    print("ready", flush=True)
    newest = None
    for n in itertools.count(seed * 100000):
        match n % 4:
            case 0:
                state, addr = uuid.uuid4().hex, f"10.{n // 250 % 250}.{n % 250}.7"
                code, token = devices.request_code(state, addr, "satellite", name=f"dev-{n}")
                devices.confirm(code, f"dev-{n}")
                newest = devices.activate(state, token, addr).device.id
                print(f"device {newest}", flush=True)
            case 1 if newest:
                devices.update_settings(newest, location={"name": f"loc-{n}"})
                print(f"setting {newest} {n}", flush=True)
            case 2:
                live.write(settings.with_changes("privacy", retention_days=n))
                print(f"config {n}", flush=True)
            case 3 if n % 12 == 3:
                snap = integrity.snapshot()
                print(f"snapshot {snap.path.name if snap else 'failed'}", flush=True)


def serve(data: Path) -> None:
    for line in sys.stdin:
        seed, after_s = line.split()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                  # the writer: a fresh process; nothing of SQLite's was opened before
            os.close(r)
            os.dup2(w, 1)
            try:
                main(data, int(seed))
            finally:
                os._exit(1)
        os.close(w)
        out = b""
        while b"ready\n" not in out:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            out += chunk
        time.sleep(float(after_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        while chunk := os.read(r, 65536):
            out += chunk
        os.close(r)
        sys.stdout.buffer.write(f"{len(out)}\n".encode() + out)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
