"""Wiring (appliance/service.py install_rooms): service.datasets, `hearth data ...` on the control
channel, and imports a killed process left half done cleared at start."""

from __future__ import annotations

from appliance.datasets import commands


def install(service) -> None:
    datasets = commands.datasets_for(service.settings.data_dir, lambda: service.settings.privacy, service.disk)
    datasets.clean_staging()
    service.datasets = datasets
    if control := getattr(service, "control", None):
        commands.install(control, datasets)
