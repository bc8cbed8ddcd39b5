"""The container image: the x86-64 rootfs tarball imported with podman: its command, environment
and contents. tests/image/test_compose.py starts it, with image/compose.yaml."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from vmtools import OUT, ROOT, built_image

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]


def test_container_image_is_imported():
    built_image("container", OUT / "hearth-container-x86_64.docker.tar", timeout=1500)
    assert shutil.which("podman"), "podman is missing (build-image.sh --target container installs it)"
    info = json.loads(subprocess.run(["podman", "image", "inspect", "localhost/hearth:latest"],
                                     check=True, capture_output=True, text=True).stdout)[0]
    assert info["Config"]["Cmd"] == ["/opt/hearth/venv/bin/hearth", "run"]
    assert "HEARTH_DATA=/var/lib/hearth" in info["Config"]["Env"]
    assert info["Architecture"] == "amd64"


def test_compose_file_names_the_image_and_services():
    text = (ROOT / "image" / "compose.yaml").read_text()
    for needle in ("image: localhost/hearth:latest", '"serve"', '"setup"',
                   '/bin/hearth", "broker"]',
                   'network_mode: "service:mosquitto"', "hearth-data:/var/lib/hearth"):
        assert needle in text, f"image/compose.yaml lacks {needle!r}"
