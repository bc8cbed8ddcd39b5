"""An ESPHome-style manifest.json per device type, for stock ESPHome `update: platform: http_request`.

ESPHome reads the ESP Web Tools manifest with an `ota` block per build; `md5` and `path` are
required, `path` may be a full URL, `summary` and `release_url` are optional. `sha256` is extra
(newer ESPHome versions and other clients can use it).
"""

from __future__ import annotations

from firmware_cache.manifest import Release


def manifest(release: Release, md5: str, url: str, chip_family: str = "") -> dict:
    return {
        "name": release.device_type,
        "version": release.version,
        "builds": [
            {
                "chipFamily": release.chip_family or chip_family or "ESP32",
                "ota": {"path": url, "md5": md5, "sha256": release.sha256, "summary": release.notes or release.version},
            }
        ],
    }
