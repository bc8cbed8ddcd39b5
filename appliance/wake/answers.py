"""Built-in answers for a satellite's question, so a household hears a reply with nothing else
installed. Other rooms add responders (fn(text) -> reply text or None) to `Satellites.responders`."""

from __future__ import annotations

import re
from datetime import datetime

_TIME = re.compile(r"\bwhat(?:'s| is)? (?:the )?time\b|\btime is it\b", re.I)
_DATE = re.compile(r"\bwhat(?:'s| is)? (?:the |today's )?date\b|\bwhat day is it\b", re.I)


def clock(text: str, now: datetime | None = None) -> str | None:
    now = now or datetime.now()
    if _TIME.search(text):
        return f"It is {now.hour % 12 or 12}:{now.minute:02d} {'PM' if now.hour >= 12 else 'AM'}."
    if _DATE.search(text):
        return f"Today is {now:%A, %B} {now.day}."
    return None
