"""Wake word over Wyoming (`detect` + audio -> `detection` / `not-detected`) through the one wake path.

Until the wake-word module (appliance/wake/) is installed, `adapter()` returns None and a
`detect` gets an error event saying so.
"""

from __future__ import annotations

import importlib.util


def adapter(service):
    if importlib.util.find_spec("appliance.wake") is None:
        return None
    return None
