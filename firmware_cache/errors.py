"""What can go wrong in the firmware cache, one class per fault.

Each edge translates these once: the CLI prints `Error: <message>` and exits 1, the HTTP routes
answer a 4xx/5xx with a JSON body, the MQTT handler sends the device an error message.
"""

from __future__ import annotations


class FirmwareError(Exception):
    """Base: every message says what happened and what to do."""

    code = "firmware_error"


class ManifestError(FirmwareError):
    """A manifest is not valid JSON, misses a field, or holds a bad value."""

    code = "bad_manifest"


class SignatureError(ManifestError):
    """A manifest's Ed25519 signature is missing (a key is configured) or does not verify."""

    code = "bad_signature"


class IntegrityError(FirmwareError):
    """A downloaded or imported file has the wrong size or sha256; it was deleted, never served."""

    code = "integrity"


class Rejected(IntegrityError):
    """A release whose upstream image failed verification before; it is retried only by the
    scheduled check (with backoff) or a person's `hearth firmware check`, never by a request."""

    code = "rejected"


class BadDeviceType(FirmwareError):
    """A device type name that breaks the one rule (mqtt/device_type.py)."""

    code = "bad_device_type"


class UpstreamError(FirmwareError):
    """The upstream server could not be reached or answered with an error."""

    code = "upstream"


class QuotaError(FirmwareError):
    """The file does not fit in the firmware quota even after eviction, or the disk is full."""

    code = "quota"


class UnknownFirmware(FirmwareError):
    """No release or file with that name, type or hash is known here."""

    code = "not_found"


class NotReady(FirmwareError):
    """The file is known but still downloading; ask again later."""

    code = "not_ready"

    def __init__(self, message: str, retry_after_s: int = 10):
        super().__init__(message)
        self.retry_after_s = retry_after_s
