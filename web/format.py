"""Small formatters the templates share: sizes, durations, times."""

from __future__ import annotations

import time


def size(n: float | int | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def duration(seconds: float | int | None) -> str:
    s = int(seconds or 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{s} s"


def when(ts: float | int | None) -> str:
    if not ts:
        return "never"
    ago = time.time() - float(ts)
    if ago < 60:
        return "just now"
    if ago < 86400:
        return f"{duration(ago)} ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(ts)))


def attachment(data: bytes, content_type: str, name_pattern: str):
    """A download: `data` as a file named by strftime(name_pattern), never cached."""
    import bottle
    name = time.strftime(name_pattern)
    return bottle.HTTPResponse(body=data, headers={
        "Content-Type": content_type, "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(len(data)), "Cache-Control": "no-store"})
