"""Hearth as a running process: the local control channel (one writer per resource), chores off the
network and audio threads, systemd's notify/watchdog protocol, restart from the page, metrics and
the log ring buffer, open-file limits, the broker as Hearth runs it, and the sweep of retained
messages.
"""
