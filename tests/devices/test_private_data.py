"""The data directory is Hearth's alone whatever the umask: folder 0700, files 0600, and what Hearth
creates afterwards too. `hearth run` itself is checked in tests/abuse/test_abuse_idle_connections.py
(started with the test's own umask)."""

from __future__ import annotations

import os
import stat

from appliance.commands.runner import private


def test_a_world_readable_data_dir_is_made_private(tmp_path):
    old = os.umask(0o022)
    try:
        data = tmp_path / "var"
        (data / "secrets").mkdir(parents=True)
        (data / "hearth.db").write_text("x")
        (data / "secrets" / "accounts.json").write_text("{}")
        os.chmod(data, 0o755)
        private(data)
        mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
        assert mode(data) == 0o700 and mode(data / "secrets") == 0o700
        assert mode(data / "hearth.db") == 0o600 and mode(data / "secrets" / "accounts.json") == 0o600
        (data / "later.log").write_text("y")                       # what Hearth writes afterwards
        assert mode(data / "later.log") == 0o600
    finally:
        os.umask(old)
