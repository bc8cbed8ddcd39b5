"""Sign-in for the web page: one admin password, server-side sessions, rate-limited attempts.

The session cookie is HttpOnly and SameSite=Strict (and Secure when the request came over TLS);
the session itself (expiry, CSRF token, password generation) stays in this process's memory, so
a restart or a password reset signs everybody out. Every path needs a session except PUBLIC ones.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from urllib.parse import quote
from dataclasses import dataclass

import bottle

from web import csrf
from web.app import json_error

COOKIE = "hearth_session"
# the device API, firmware downloads, the health check, /metrics (own rule), static files, sign-in,
PUBLIC_PREFIXES = ("/v1/", "/firmware/", "/static/")
PUBLIC_PATHS = {"/health", "/metrics", "/login", "/favicon.ico"}
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0


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


class RateLimit:
    """At most MAX_FAILURES failed sign-ins per client address in FAILURE_WINDOW_S."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.limit, self.window_s = limit, window_s
        self._lock = threading.Lock()
        self._failures: dict[str, deque] = {}

    def retry_after(self, who: str) -> int:
        now = time.monotonic()
        with self._lock:
            q = self._failures.get(who)
            while q and now - q[0] > self.window_s:
                q.popleft()
            if q and len(q) >= self.limit:
                return int(self.window_s - (now - q[0])) + 1
        return 0

    def failed(self, who: str) -> None:
        with self._lock:
            if len(self._failures) > 10000:
                self._failures.clear()
            self._failures.setdefault(who, deque()).append(time.monotonic())

    def succeeded(self, who: str) -> None:
        with self._lock:
            self._failures.pop(who, None)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def client_addr() -> str:
    """The peer's address as the socket saw it (never X-Forwarded-For, which anyone can send)."""
    return bottle.request.environ.get("REMOTE_ADDR") or "?"


def secure_request() -> bool:
    return bottle.request.urlparts.scheme == "https"


def current() -> Session | None:
    return bottle.request.environ.get("hearth.session")


def install(app: bottle.Bottle, service) -> None:
    sessions = Sessions(service.settings.web.session_hours)
    limiter = RateLimit()
    app.config["hearth.sessions"] = sessions

    @app.hook("before_request")
    def guard():
        request = bottle.request
        session = sessions.get(request.get_cookie(COOKIE), service.admin.generation())
        request.environ["hearth.session"] = session
        if is_public(request.path):
            return
        if session is None:
            if request.path.startswith("/api/") or request.method not in csrf.SAFE_METHODS:
                raise json_error(401, "login_required", "sign in first (POST /login)")
            target = request.fullpath + (f"?{request.query_string}" if request.query_string else "")
            raise bottle.HTTPResponse(status=303, headers={"Location": "/login?next=" + quote(target, safe="/")})
        try:
            csrf.check(request, session.csrf)
        except csrf.CsrfError as exc:
            raise json_error(403, "csrf", str(exc)) from None

    @app.get("/login")
    def login_page():
        from web.pages import render
        if current():
            return bottle.redirect("/")
        token = csrf.new_token()
        bottle.response.set_cookie(csrf.LOGIN_COOKIE, token, path="/login", httponly=True,
                                   samesite="strict", secure=secure_request(), max_age=3600)
        return render("login", title="Sign in", login_csrf=token, error="", next=_next())

    @app.post("/login")
    def login():
        from web.pages import render
        request = bottle.request
        who = client_addr()
        wait = limiter.retry_after(who)
        if wait:
            bottle.response.status = 429
            bottle.response.set_header("Retry-After", str(wait))
            return _login_again(render, f"Too many wrong passwords. Try again in {wait} seconds.")
        expected = request.get_cookie(csrf.LOGIN_COOKIE) or ""
        try:
            csrf.check(request, expected)
        except csrf.CsrfError:
            bottle.response.status = 403
            return _login_again(render, "This sign-in form has expired. Please try again.")
        password = request.forms.getunicode("password") or ""
        if not service.admin.verify(password):
            limiter.failed(who)
            bottle.response.status = 401
            return _login_again(render, "That password is not right.")
        limiter.succeeded(who)
        session = sessions.create(service.admin.generation())
        bottle.response.set_cookie(COOKIE, session.token, path="/", httponly=True, samesite="strict",
                                   secure=secure_request(), max_age=sessions.ttl)
        bottle.response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
        return bottle.redirect(_next(), 303)

    @app.post("/logout")
    def logout():
        sessions.drop(bottle.request.get_cookie(COOKIE))
        bottle.response.delete_cookie(COOKIE, path="/")
        return bottle.redirect("/login", 303)


def _next() -> str:
    target = bottle.request.forms.getunicode("next") if bottle.request.method == "POST" else bottle.request.query.getunicode("next")
    # only local paths: never an open redirect
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_again(render, error: str) -> str:
    token = csrf.new_token()
    bottle.response.set_cookie(csrf.LOGIN_COOKIE, token, path="/login", httponly=True,
                               samesite="strict", secure=secure_request(), max_age=3600)
    return render("login", title="Sign in", login_csrf=token, error=error, next=_next())
