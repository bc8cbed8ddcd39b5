"""Skill settings that Mycroft devices upload (`settingsMeta`) and read back (`skill/settings`).

Hearth keeps them per device, as the device sent them; it runs no skills itself.
"""

from __future__ import annotations

import json
import re
import time

from appliance.devices.errors import BadSetting
from appliance.state.store import Store

SKILL_GID = re.compile(r"^[A-Za-z0-9_.@|:/-]{1,200}$")


class SkillsBook:
    def __init__(self, store: Store):
        self.store = store

    def put_meta(self, device_id: str, meta: dict) -> None:
        gid = meta.get("skill_gid") or meta.get("identifier")
        if not isinstance(gid, str) or not SKILL_GID.match(gid):
            raise BadSetting("settingsMeta needs a skill_gid (1-200 characters of A-Z a-z 0-9 _ . @ | : / -)")
        with self.store.transaction() as tx:
            tx["devices_skills"].upsert({"device_id": device_id, "skill_gid": gid, "meta": json.dumps(meta),
                                         "updated": time.time()}, pk=("device_id", "skill_gid"))

    def list(self, device_id: str) -> list[dict]:
        rows = self.store.db.query("select * from devices_skills where device_id = ? order by skill_gid", [device_id])
        out = []
        for r in rows:
            meta = json.loads(r["meta"] or "{}")
            settings = json.loads(r["settings"]) if r["settings"] else {}
            out.append({"skill_gid": r["skill_gid"], "skillMetadata": meta.get("skillMetadata", {}),
                        "settings": settings, "display_name": meta.get("display_name", r["skill_gid"])})
        return out
