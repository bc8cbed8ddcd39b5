"""Benchmark: 20 devices download one large image at once from Hearth vs plain static servers.

    python -m bench.firmware          (HEARTH_BENCH_FW_MB=1024, HEARTH_BENCH_FW_ROUNDS=3, HEARTH_BENCH_FW_CLIENTS=20)

Hearth is `hearth run` as a user starts it (Wyoming and discovery on, default limits, the engines
loaded): the image is imported into its cache with `hearth firmware import` (the running service
does it) and downloaded from its integrated web server. Every other server is its own process on
loopback, serving the same bytes from the same disk; the clients are `curl` processes (C, so the
client side is not the bottleneck). Throughput is the bytes all clients received over the wall
time from the first start to the last finish. The resident memory of the serving process is
sampled every 50 ms. The servers take turns, their order rotating each round. Medians over the rounds.
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

from bench.common import HEARTH, ROOT, keep_history, start_hearth

OUT = ROOT / "docs" / "benchmarks-firmware.md"
HEARTH_NAME = "Hearth (`hearth run`, integrated web server)"


def _serve(folder: str) -> None:
    """Child process: waitress serving the file through wsgi.file_wrapper, nothing else; prints its port."""
    import waitress

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


def _image(folder: Path, size_mb: int) -> str:
    """A size_mb image with its manifest in `folder` (as on a USB stick); returns its sha256."""
    block = os.urandom(1 << 20)
    sha = hashlib.sha256()
    with (folder / "image.bin").open("wb") as fh:
        for i in range(size_mb):
            chunk = block[i % 251:] + block[:i % 251]
            fh.write(chunk)
            sha.update(chunk)
    digest = sha.hexdigest()
    (folder / "image.json").write_text(json.dumps({"device_type": "bench", "version": "1", "url": "image.bin",
                                                   "size": size_mb << 20, "sha256": digest}))
    return digest


def _hearth_with(usb: Path):
    """`hearth run` as installed, the image imported into its firmware cache by `hearth firmware import`."""
    hearth = start_hearth(as_installed=True)
    done = subprocess.run([HEARTH, "firmware", "import", str(usb)], env={**os.environ, "HEARTH_DATA": str(hearth.data)},
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        hearth.stop()
        raise RuntimeError(f"hearth firmware import failed: {done.stderr.strip() or done.stdout.strip()}")
    return hearth


def measure(size_mb: int, clients: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="hearth-bench-fw-") as tmp:
        root = Path(tmp)
        usb, static = root / "usb", root / "static"
        usb.mkdir()
        static.mkdir()
        digest = _image(usb, size_mb)
        hearth = _hearth_with(usb)
        try:
            os.replace(usb / "image.bin", static / "image.bin")   # the same bytes for the static servers
            servers: dict[str, Callable[[], tuple[subprocess.Popen | None, int, str]]] = {
                HEARTH_NAME: lambda: (None, hearth.web_port, f"/firmware/{digest}.bin"),
                "waitress static file": lambda: (*_start([sys.executable, "-m", "bench.firmware", "serve", str(static)]), "/image.bin"),
                "python http.server": lambda: (*_http_server(static), "/image.bin"),
            }
            results: dict[str, list[dict]] = {name: [] for name in servers}
            names = list(servers)
            for rnd in range(rounds):
                for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                    proc, port, path = servers[name]()
                    try:
                        url = f"http://127.0.0.1:{port}{path}"
                        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-r", "0-1023", url], check=True)  # warm
                        run = _download_all(url, clients, (proc or hearth.proc).pid)
                        assert run["sizes"] == [size_mb << 20] * clients, f"{name}: short downloads {run['sizes'][:3]}"
                        results[name].append(run)
                    finally:
                        if proc is not None:
                            proc.terminate()
                            proc.wait(10)
                            proc.stdout.close()
        finally:
            hearth.stop()
    return results


def section(size_mb: int, clients: int, rounds: int, results: dict, history: str = "") -> str:
    rows, med = [], {}
    for name, runs in results.items():
        mbps = statistics.median(r["bytes"] / r["wall"] / 2**20 for r in runs)
        idle = statistics.median(r["idle"] / 2**20 for r in runs)
        growth = statistics.median((r["peak"] - r["idle"]) / 2**20 for r in runs)
        med[name] = mbps
        rows.append(f"| {name} | {mbps:,.0f} | {statistics.median(r['wall'] for r in runs):.1f} | {idle:.0f} | {growth:+.1f} |")
    hearth = med[HEARTH_NAME]
    verdict = lambda ok: "met" if ok else "**missed**"
    ratios = "; ".join(f"{hearth / v:.2f}x {n} ({verdict(hearth / v >= 0.9)})" for n, v in med.items() if n != HEARTH_NAME)
    growth = statistics.median((r["peak"] - r["idle"]) / 2**20 for r in results[HEARTH_NAME])
    cpu = f"{os.cpu_count()} CPUs"
    return "\n".join([
        "## Firmware serving",
        "",
        f"{clients} concurrent downloads (curl) of a {size_mb} MiB image over loopback, each server in its own",
        f"process on the same machine ({cpu}), same bytes, same run, the servers taking turns; medians of {rounds} rounds.",
        "Hearth is `hearth run` as a user starts it (Wyoming and discovery on, default limits, the speech engines",
        "loaded), the image imported with `hearth firmware import` and downloaded from its integrated web server",
        "(`/firmware/<sha256>.bin`). The clock runs from starting the first curl to the last one finishing.",
        "Memory: resident set of the serving process (for Hearth, the whole service), idle (after one warm-up",
        "request) and the peak growth above idle while all downloads run.",
        "",
        "| server | MiB/s (all clients) | wall s | idle RSS MiB | RSS growth MiB |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Hearth vs plain static servers (target >= 0.9x): {ratios}. Hearth's RSS growth {growth:+.1f} MiB "
        f"(target < 150 MiB: {verdict(growth < 150)}). Load average (1 min) at the end of the run: {os.getloadavg()[0]:.1f}.",
        *([f"Every round's figures: `{history}`."] if history else []),
        "Reproduce: `python -m bench.firmware` (`HEARTH_BENCH_FW_MB`, `HEARTH_BENCH_FW_ROUNDS`, `HEARTH_BENCH_FW_CLIENTS`).",
        "",
    ])


def run(report: Callable[[str], None]) -> None:
    """Hand the markdown section to `report` (the bench runner collects sections)."""
    size_mb = int(os.environ.get("HEARTH_BENCH_FW_MB", "1024"))
    clients = int(os.environ.get("HEARTH_BENCH_FW_CLIENTS", "20"))
    rounds = int(os.environ.get("HEARTH_BENCH_FW_ROUNDS", "3"))
    results = measure(size_mb, clients, rounds)
    figures = {"size_mb": size_mb, "clients": clients, "rounds": rounds,
               "runs": {name: [{k: r[k] for k in ("bytes", "wall", "idle", "peak")} for r in runs]
                        for name, runs in results.items()}}
    path = keep_history(ROOT / "docs", "firmware", figures)
    report(section(size_mb, clients, rounds, results, str(path.relative_to(ROOT))))


def main() -> None:
    def write(text: str) -> None:
        print(text)
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(text)
    run(write)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve(sys.argv[2])
    else:
        main()
