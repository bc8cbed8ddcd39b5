"""Benchmark: 20 devices download one large image at once from Hearth vs plain static servers.

    python -m bench.firmware          (HEARTH_BENCH_FW_MB=1024, HEARTH_BENCH_FW_ROUNDS=3, HEARTH_BENCH_FW_CLIENTS=20)

Every server is its own process on loopback, serving the same file from the same disk; the
clients are `curl` processes (C, so the client side is not the bottleneck). Throughput is the
bytes all clients received over the wall time from the first start to the last finish. The
resident memory of the serving process is sampled every 50 ms. Medians over the rounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks-firmware.md"


def _serve(kind: str, folder: str) -> None:
    """Child process: one server on a free loopback port; prints the port when ready."""
    import waitress

    if kind == "hearth":
        import bottle

        from appliance.config import FirmwareSettings
        from appliance.store import Store
        from firmware_cache.service import FirmwareCache
        from web import firmware_routes

        cache = FirmwareCache(FirmwareSettings(check_interval_min=0, quota_mb=1 << 20), Path(folder),
                              Store(Path(folder) / "hearth.db"))
        app = bottle.Bottle()
        firmware_routes.install(app, cache)
    else:  # waitress serving the file through wsgi.file_wrapper, nothing else
        path = Path(folder) / "image.bin"

        def app(environ, start_response):
            start_response("200 OK", [("Content-Length", str(path.stat().st_size)),
                                      ("Content-Type", "application/octet-stream")])
            return environ["wsgi.file_wrapper"](path.open("rb"), 1 << 16)

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    print(server.effective_port, flush=True)
    server.run()


def _start(argv: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(proc.stdout.readline())      # each server prints its port when ready
    return proc, port


def _http_server(folder: Path) -> tuple[subprocess.Popen, int]:
    code = ("import http.server, functools, sys\n"
            "h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n"
            "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n"
            "print(s.server_address[1], flush=True)\n"
            "s.serve_forever()\n")
    return _start([sys.executable, "-c", code, str(folder)])


def _download_all(url: str, clients: int, pid: int) -> dict:
    sampler = psutil.Process(pid)
    idle = sampler.memory_info().rss
    peak = [idle]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], sampler.memory_info().rss)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url],
                              stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    sizes = [int(p.communicate()[0] or 0) for p in procs]
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    return {"bytes": sum(sizes), "sizes": sizes, "wall": wall, "idle": idle, "peak": peak[0]}


def measure(size_mb: int, clients: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hearth-bench-fw-") as tmp:
        root = Path(tmp)
        usb, static = root / "usb", root / "static"
        usb.mkdir()
        static.mkdir()
        block = os.urandom(1 << 20)
        sha = hashlib.sha256()
        with (usb / "image.bin").open("wb") as fh:
            for i in range(size_mb):
                chunk = block[i % 251:] + block[:i % 251]
                fh.write(chunk)
                sha.update(chunk)
        digest = sha.hexdigest()
        (usb / "image.json").write_text(json.dumps({"device_type": "bench", "version": "1", "url": "image.bin",
                                                    "size": size_mb << 20, "sha256": digest}))
        from appliance.config import FirmwareSettings
        from appliance.store import Store
        from firmware_cache.service import FirmwareCache
        store = Store(root / "hearth.db")
        cache = FirmwareCache(FirmwareSettings(check_interval_min=0, quota_mb=1 << 20), root, store)
        [outcome] = cache.import_dir(usb)
        assert outcome.state == "cached", outcome.error
        cache.stop()
        store.close()
        os.replace(usb / "image.bin", static / "image.bin")   # the same bytes for the static servers

        servers: dict[str, Callable[[], tuple[subprocess.Popen, int]]] = {
            "Hearth (waitress + firmware route)": lambda: _start([sys.executable, "-m", "bench.firmware", "serve", "hearth", str(root)]),
            "waitress static file": lambda: _start([sys.executable, "-m", "bench.firmware", "serve", "static", str(static)]),
            "python http.server": lambda: _http_server(static),
        }
        paths = {"Hearth (waitress + firmware route)": f"/firmware/{digest}.bin"}
        results: dict[str, list[dict]] = {name: [] for name in servers}
        for _ in range(rounds):
            for name, start in servers.items():
                proc, port = start()
                try:
                    url = f"http://127.0.0.1:{port}{paths.get(name, '/image.bin')}"
                    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-r", "0-1023", url], check=True)  # warm
                    run = _download_all(url, clients, proc.pid)
                    assert run["sizes"] == [size_mb << 20] * clients, f"{name}: short downloads {run['sizes'][:3]}"
                    results[name].append(run)
                finally:
                    proc.terminate()
                    proc.wait(10)
                    proc.stdout.close()
    return results


def section(size_mb: int, clients: int, rounds: int, results: dict) -> str:
    rows, med = [], {}
    for name, runs in results.items():
        mbps = statistics.median(r["bytes"] / r["wall"] / 2**20 for r in runs)
        idle = statistics.median(r["idle"] / 2**20 for r in runs)
        growth = statistics.median((r["peak"] - r["idle"]) / 2**20 for r in runs)
        med[name] = mbps
        rows.append(f"| {name} | {mbps:,.0f} | {statistics.median(r['wall'] for r in runs):.1f} | {idle:.0f} | {growth:+.1f} |")
    hearth = med["Hearth (waitress + firmware route)"]
    ratios = "; ".join(f"{hearth / v:.2f}x {n}" for n, v in med.items() if not n.startswith("Hearth"))
    cpu = f"{os.cpu_count()} CPUs"
    return "\n".join([
        "## Firmware serving",
        "",
        f"{clients} concurrent downloads (curl) of a {size_mb} MiB image over loopback, each server in its own",
        f"process on the same machine ({cpu}), same file, same run; medians of {rounds} rounds.",
        "Memory: resident set of the serving process, idle (after one warm-up request) and the peak",
        "growth above idle while all downloads run.",
        "",
        "| server | MiB/s (all clients) | wall s | idle RSS MiB | RSS growth MiB |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Hearth vs plain static servers: {ratios} (target >= 0.9x). Hearth's RSS growth target: < 150 MiB, flat.",
        "Reproduce: `python -m bench.firmware` (`HEARTH_BENCH_FW_MB`, `HEARTH_BENCH_FW_ROUNDS`, `HEARTH_BENCH_FW_CLIENTS`).",
        "",
    ])


def run(report: Callable[[str], None]) -> None:
    """Hand the markdown section to `report` (the bench runner collects sections)."""
    size_mb = int(os.environ.get("HEARTH_BENCH_FW_MB", "1024"))
    clients = int(os.environ.get("HEARTH_BENCH_FW_CLIENTS", "20"))
    rounds = int(os.environ.get("HEARTH_BENCH_FW_ROUNDS", "3"))
    report(section(size_mb, clients, rounds, measure(size_mb, clients, rounds)))


def main() -> None:
    def write(text: str) -> None:
        print(text)
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(text)
    run(write)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve(sys.argv[2], sys.argv[3])
    else:
        main()
