"""What goes wrong in speech-to-text, below every engine module (engines.py imports them, not back)."""

from __future__ import annotations


class SttError(RuntimeError):
    """The engine or its model cannot be used; the message says what to change."""
