"""Web sessions: server-side, in this process's memory (a restart or a password reset signs everybody
out); the signed-in session of the request being served is `current()` (web/auth.py sets it)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import bottle

from web import csrf


@dataclass
class Session:
    token: str
    csrf: str
    expires: float
    generation: int


class Sessions:
    def __init__(self, hours: int):
        self.ttl = hours * 3600
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def create(self, generation: int) -> Session:
        s = Session(csrf.new_token(), csrf.new_token(), time.time() + self.ttl, generation)
        with self._lock:
            now = time.time()
            self._by_token = {t: v for t, v in self._by_token.items() if v.expires > now}
            self._by_token[s.token] = s
        return s

    def get(self, token: str | None, generation: int) -> Session | None:
        if not token:
            return None
        with self._lock:
            s = self._by_token.get(token)
            if s is None:
                return None
            if s.expires < time.time() or s.generation != generation:
                del self._by_token[token]
                return None
            return s

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)


def current() -> Session | None:
    return bottle.request.environ.get("hearth.session")
