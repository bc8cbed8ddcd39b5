"""What `hearth data ...` does, as named actions on one Datasets: run by the service when it runs
(asked over the control channel, appliance/process/control.py), else by the command alone under the
service lock, so one writer ever touches <data>/datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from appliance.datasets.checks import DatasetRefused, Limits
from appliance.datasets.importer import Datasets
from appliance.state.config import PrivacySettings
from appliance.state.storage import Disk

ACTIONS = ("data.import", "data.list", "data.remove")


def datasets_for(data_dir: Path, privacy: Callable[[], PrivacySettings], disk: Disk) -> Datasets:
    """The data directory's datasets, capped by [privacy] import_max_mb (read at every import) and
    the low-disk reserve."""
    return Datasets(data_dir / "datasets",
                    limits=lambda: Limits(total_bytes=privacy().import_max_mb * 2**20),
                    room=lambda: disk.free() - disk.reserve_bytes())


def perform(datasets: Datasets, action: str, params: dict) -> dict:
    match action:
        case "data.import":
            return datasets.import_path(Path(params["path"]), params.get("name") or None)
        case "data.list":
            return {"datasets": datasets.list()}
        case "data.remove":
            datasets.remove(params["name"])
            return {}
    raise DatasetRefused(action, "unknown data action", "unknown_action")


def install(control, datasets: Datasets) -> None:
    for action in ACTIONS:
        control.register(action, lambda params, action=action: perform(datasets, action, params))
