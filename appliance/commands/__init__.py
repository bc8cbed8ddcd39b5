"""The `hearth` command and its sub-commands: argument parsing (`cli.py`), `setup`/`run`/`serve`
(`runner.py`, which starts the wiring in appliance/service.py), `broker`, `admin`, and `client`
(talk to a running Hearth as a device would, including a simulated satellite). Each room's own
sub-commands (devices, helpers, update, support, hermes) live in that room's `cli.py`.
"""
