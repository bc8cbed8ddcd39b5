"""Update errors: each one a documented code and a message that says what to do."""

from __future__ import annotations


class UpdateError(RuntimeError):
    code = "update_failed"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class NotAppliance(UpdateError):
    """RAUC or its system config is missing: a checkout, not the appliance image."""

    code = "not_appliance"


class BadBundle(UpdateError):
    """The bundle was refused before anything was written; `code` says why (docs/appliance.md)."""

    code = "bad_bundle"


class Busy(UpdateError):
    code = "update_busy"
