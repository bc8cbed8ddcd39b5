"""What can go wrong with devices, pairing and tokens: specific errors inside, translated once at
each edge (a 4xx JSON body over HTTP, an `Error: ...` line on the command line, an error message
on the device's MQTT error topic). `status` is the HTTP status the web edge answers with."""

from __future__ import annotations


class DeviceError(ValueError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnknownDevice(DeviceError):
    status = 404
    code = "unknown_device"


class BadCode(DeviceError):
    """A pairing code that does not exist, has expired or was already used."""
    status = 404
    code = "bad_code"


class NotConfirmed(DeviceError):
    """The device polls for its identity before a person confirmed the code (not an error: wait)."""
    status = 401
    code = "not_confirmed"


class BadToken(DeviceError):
    """A token that is unknown, expired, already used, or not the one this device was given."""
    status = 401
    code = "bad_token"


class Forbidden(DeviceError):
    status = 403
    code = "forbidden"


class RateLimited(DeviceError):
    status = 429
    code = "rate_limited"


class TooManyPending(DeviceError):
    """Too many pairing requests are waiting, from one address or from all together."""
    status = 429
    code = "too_many_pending"


class UnknownClient(DeviceError):
    """A Wyoming client address that is neither allowed nor waiting."""
    status = 404
    code = "unknown_client"


class BadSetting(DeviceError):
    code = "bad_setting"
