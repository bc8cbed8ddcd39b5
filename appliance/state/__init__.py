"""The box's state and the disk it lives on: the SQLite store and its migrations, the data disk
(full-disk errors, atomic writes, the reserve), the registry's integrity checks, snapshots and what
a repair lost, backups, recovery mode, the settings file and its live changes, and the accounts
(Hearth's own broker logins, the web admin password).
"""
