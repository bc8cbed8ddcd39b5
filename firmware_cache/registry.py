"""The firmware tables in Hearth's SQLite store, their migrations and the queries on them.

    firmware_types     device types Hearth fetches for: manifest URL override, staged rollout on/off
    firmware_releases  every release seen per (type, channel, version): where from, state, error,
                       failed downloads in a row and when the next may be tried (backoff)
    firmware_channels  per (type, channel): current and previous version, last check and its error
    firmware_devices   per device: type, channel it follows, version it runs, last report
    firmware_rollouts  per (type, channel, version): canary device, state (canary|done|paused)
    firmware_blobs     per sha256: md5 and when a device last fetched it (eviction order)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import sqlite_utils

from appliance.state.store import Store
from firmware_cache.manifest import Release


def _firmware_0001(db: sqlite_utils.Database) -> None:
    db["firmware_types"].create(
        {"device_type": str, "manifest_url": str, "staged": int}, pk="device_type", if_not_exists=True
    )
    db["firmware_releases"].create(
        {
            "device_type": str, "channel": str, "version": str, "url": str, "size": int, "sha256": str,
            "notes": str, "chip_family": str, "signed": int, "source": str, "state": str, "error": str,
            "seen_at": float,
        },
        pk=("device_type", "channel", "version"), if_not_exists=True,
    )
    db["firmware_channels"].create(
        {"device_type": str, "channel": str, "current": str, "previous": str, "checked_at": float, "error": str},
        pk=("device_type", "channel"), if_not_exists=True,
    )
    db["firmware_devices"].create(
        {"device": str, "device_type": str, "channel": str, "version": str, "state": str, "progress": int,
         "error": str, "updated_at": float},
        pk="device", if_not_exists=True,
    )
    db["firmware_rollouts"].create(
        {"device_type": str, "channel": str, "version": str, "canary": str, "state": str, "error": str,
         "started_at": float, "updated_at": float},
        pk=("device_type", "channel", "version"), if_not_exists=True,
    )
    db["firmware_blobs"].create({"sha256": str, "md5": str, "last_used": float}, pk="sha256", if_not_exists=True)


def _firmware_0002(db: sqlite_utils.Database) -> None:
    db["firmware_releases"].add_column("failures", int, not_null_default=0)
    db["firmware_releases"].add_column("retry_at", float, not_null_default=0.0)


def _firmware_0003(db: sqlite_utils.Database) -> None:
    db["firmware_releases"].add_column("compatible", str, not_null_default="")


MIGRATIONS = [
    ("firmware_0001_tables", _firmware_0001),
    ("firmware_0002_release_backoff", _firmware_0002),
    ("firmware_0003_release_compatible", _firmware_0003),
]

# release states: pending (seen, not cached yet), ready (verified in the store), failed (the last
# download broke off: upstream, disk), rejected (the image upstream failed verification), evicted
FAILED, REJECTED = "failed", "rejected"


def as_release(row: dict) -> Release:
    return Release(
        device_type=row["device_type"], channel=row["channel"], version=row["version"], url=row["url"],
        size=row["size"], sha256=row["sha256"], notes=row["notes"] or "", chip_family=row["chip_family"] or "",
        signed=bool(row["signed"]), compatible=row.get("compatible") or "",
    )


class Registry:
    def __init__(self, store: Store, staged_default: bool = False):
        self.store = store
        self.staged_default = staged_default

    def _rows(self, sql: str, params: list | tuple = ()) -> list[dict]:
        return list(self.store.db.query(sql, params))

    # types
    def add_type(self, device_type: str, manifest_url: str | None = None, staged: bool | None = None) -> None:
        with self.store.transaction() as tx:
            row = {"device_type": device_type}
            if manifest_url is not None:
                row["manifest_url"] = manifest_url
            if staged is not None:
                row["staged"] = int(staged)
            existing = list(tx.query("select * from firmware_types where device_type = ?", [device_type]))
            base = existing[0] if existing else {"manifest_url": "", "staged": int(self.staged_default)}
            tx["firmware_types"].upsert({**base, **row}, pk="device_type")

    def types(self) -> list[dict]:
        return self._rows(
            "select device_type, manifest_url, staged from firmware_types union "
            "select distinct device_type, '', ? from firmware_devices where device_type not in "
            "(select device_type from firmware_types) order by device_type", [int(self.staged_default)]
        )

    def staged(self, device_type: str) -> bool:
        rows = self._rows("select staged from firmware_types where device_type = ?", [device_type])
        return bool(rows[0]["staged"]) if rows else self.staged_default

    # releases
    def record_release(self, release: Release, source: str) -> str:
        """Insert or refresh a release; returns its state (new ones are 'pending').

        The same image seen again keeps its state, error and backoff: a rejected release stays
        rejected until a retry succeeds. Another sha256 under the same version starts afresh."""
        with self.store.transaction() as tx:
            key = [release.device_type, release.channel, release.version]
            old = list(tx.query(
                "select sha256, state, error, failures, retry_at from firmware_releases "
                "where device_type = ? and channel = ? and version = ?", key
            ))
            same = old[0] if old and old[0]["sha256"] == release.sha256 else None
            kept = ({k: same[k] for k in ("state", "error", "failures", "retry_at")} if same else
                    {"state": "pending", "error": "", "failures": 0, "retry_at": 0.0})
            tx["firmware_releases"].upsert(
                {**asdict(release), "signed": int(release.signed), "source": source, **kept, "seen_at": time.time()},
                pk=("device_type", "channel", "version"),
            )
        return kept["state"]

    def set_release_state(self, release: Release, state: str, error: str = "") -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "update firmware_releases set state = ?, error = ?, failures = 0, retry_at = 0 "
                "where device_type = ? and channel = ? and version = ?",
                [state, error, release.device_type, release.channel, release.version],
            )

    def note_failure(self, release: Release, state: str, error: str, delay_s: Callable[[int], float]) -> dict:
        """One more failed download of this release: state, error, and when to try again."""
        with self.store.transaction() as tx:
            key = [release.device_type, release.channel, release.version]
            rows = list(tx.query(
                "select failures from firmware_releases where device_type = ? and channel = ? and version = ?", key))
            failures = (rows[0]["failures"] or 0) + 1 if rows else 1
            retry_at = time.time() + delay_s(failures)
            tx.execute(
                "update firmware_releases set state = ?, error = ?, failures = ?, retry_at = ? "
                "where device_type = ? and channel = ? and version = ?", [state, error, failures, retry_at, *key])
        return {"state": state, "error": error, "failures": failures, "retry_at": retry_at}

    def release_row(self, release: Release) -> dict | None:
        rows = self._rows(
            "select * from firmware_releases where device_type = ? and channel = ? and version = ?",
            [release.device_type, release.channel, release.version],
        )
        return rows[0] if rows else None

    def release_rows_by_sha(self, sha256: str) -> list[dict]:
        return self._rows("select * from firmware_releases where sha256 = ? order by seen_at desc", [sha256])

    def release(self, device_type: str, channel: str, version: str) -> Release | None:
        rows = self._rows(
            "select * from firmware_releases where device_type = ? and channel = ? and version = ?",
            [device_type, channel, version],
        )
        return as_release(rows[0]) if rows else None

    def releases_by_sha(self, sha256: str) -> list[Release]:
        return [as_release(r) for r in self._rows("select * from firmware_releases where sha256 = ?", [sha256])]

    def releases(self) -> list[dict]:
        return self._rows("select * from firmware_releases order by device_type, channel, seen_at desc")

    # channels: current and previous release
    def channel(self, device_type: str, channel: str) -> dict:
        rows = self._rows(
            "select * from firmware_channels where device_type = ? and channel = ?", [device_type, channel]
        )
        return rows[0] if rows else {"device_type": device_type, "channel": channel, "current": "", "previous": "",
                                     "checked_at": 0.0, "error": ""}

    def channels(self) -> list[dict]:
        return self._rows("select * from firmware_channels order by device_type, channel")

    def current(self, device_type: str, channel: str) -> Release | None:
        version = self.channel(device_type, channel)["current"]
        return self.release(device_type, channel, version) if version else None

    def make_current(self, release: Release) -> bool:
        """Record a verified release as current (the old current becomes previous). True if it changed."""
        with self.store.transaction() as tx:
            row = self.channel(release.device_type, release.channel)
            if row["current"] == release.version:
                return False
            tx["firmware_channels"].upsert(
                {**row, "previous": row["current"] or row["previous"], "current": release.version},
                pk=("device_type", "channel"),
            )
        return True

    def note_check(self, device_type: str, channel: str, error: str) -> None:
        with self.store.transaction() as tx:
            row = self.channel(device_type, channel)
            tx["firmware_channels"].upsert({**row, "checked_at": time.time(), "error": error}, pk=("device_type", "channel"))

    def protected_shas(self) -> set[str]:
        """sha256 of every current and previous release (never evicted)."""
        rows = self._rows(
            "select r.sha256 from firmware_releases r join firmware_channels c "
            "on r.device_type = c.device_type and r.channel = c.channel and r.version in (c.current, c.previous)"
        )
        return {r["sha256"] for r in rows}

    # blobs
    def note_blob(self, sha256: str, md5: str) -> None:
        with self.store.transaction() as tx:
            tx["firmware_blobs"].upsert({"sha256": sha256, "md5": md5, "last_used": time.time()}, pk="sha256")

    def touch_blob(self, sha256: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("update firmware_blobs set last_used = ? where sha256 = ?", [time.time(), sha256])

    def blob(self, sha256: str) -> dict | None:
        rows = self._rows("select * from firmware_blobs where sha256 = ?", [sha256])
        return rows[0] if rows else None

    def forget_blob(self, sha256: str) -> None:
        with self.store.transaction() as tx:
            tx.execute("delete from firmware_blobs where sha256 = ?", [sha256])
            tx.execute("update firmware_releases set state = 'evicted' where sha256 = ? and state = 'ready'", [sha256])

    def blobs_by_age(self) -> list[dict]:
        return self._rows("select * from firmware_blobs order by last_used")

    # devices
    def set_device(self, device: str, device_type: str | None = None, channel: str | None = None, **fields) -> None:
        with self.store.transaction() as tx:
            rows = list(tx.query("select * from firmware_devices where device = ?", [device]))
            row = rows[0] if rows else {"device": device, "device_type": "", "channel": "stable", "version": "",
                                        "state": "", "progress": 0, "error": ""}
            if device_type:
                row["device_type"] = device_type
            if channel:
                row["channel"] = channel
            tx["firmware_devices"].upsert({**row, **fields, "updated_at": time.time()}, pk="device")

    def device(self, device: str) -> dict | None:
        rows = self._rows("select * from firmware_devices where device = ?", [device])
        return rows[0] if rows else None

    def devices(self, device_type: str | None = None) -> list[dict]:
        if device_type is None:
            return self._rows("select * from firmware_devices order by device")
        return self._rows("select * from firmware_devices where device_type = ? order by device", [device_type])

    # rollouts
    def rollout(self, device_type: str, channel: str, version: str) -> dict | None:
        rows = self._rows(
            "select * from firmware_rollouts where device_type = ? and channel = ? and version = ?",
            [device_type, channel, version],
        )
        return rows[0] if rows else None

    def save_rollout(self, row: dict) -> None:
        with self.store.transaction() as tx:
            tx["firmware_rollouts"].upsert({**row, "updated_at": time.time()}, pk=("device_type", "channel", "version"))

    def rollouts(self) -> list[dict]:
        return self._rows("select * from firmware_rollouts order by started_at desc")
