"""The servers people run today, installed from PyPI into their own venv and pointed at the same
bundled models: Home Assistant's wyoming-faster-whisper and wyoming-piper."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, free_port

VENV = ROOT / ".bench-venv"
PACKAGES = ["wyoming-faster-whisper==3.8.1", "wyoming-piper==2.5.2"]


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    stamp = VENV / ".stamp"
    if not (py.exists() and stamp.exists() and stamp.read_text() == " ".join(PACKAGES)):
        print("bench: installing the peers (wyoming-faster-whisper, wyoming-piper) into .bench-venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        stamp.write_text(" ".join(PACKAGES))
    return py


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[2]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{proc.args[2]} did not listen on {port}")


def start_whisper(model_dir: Path, data_dir: Path, threads: int = 2, beam: int = 1) -> tuple[subprocess.Popen, int]:
    py = ensure_venv()
    port = free_port()
    proc = subprocess.Popen([str(py), "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}",
                             "--model", str(model_dir), "--data-dir", str(data_dir), "--local-files-only",
                             "--device", "cpu", "--compute-type", "int8", "--beam-size", str(beam),
                             "--cpu-threads", str(threads), "--language", "en"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def start_piper(voice_onnx: Path, data_dir: Path) -> tuple[subprocess.Popen, int]:
    py = ensure_venv()
    port = free_port()
    proc = subprocess.Popen([str(py), "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{port}",
                             "--voice", str(voice_onnx), "--data-dir", str(data_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port
