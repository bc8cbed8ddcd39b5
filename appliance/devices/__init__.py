"""Devices that belong: pairing with a person in the loop, a broker login and ACL per device, the
registry with per-device settings, presence, and the Wyoming clients a person allowed. The
Mycroft-compatible device API that serves them over HTTP is web/device_api.py (the wiring installs it).

`room.install(service)` (called by the wiring, appliance/service.py) wires it all into the running
service and makes `service.devices` (a manager.Devices) the API for the web page and everything else,
and `service.wyoming_access` (a wyoming_clients.WyomingAccess) the list of allowed Wyoming clients.
"""
