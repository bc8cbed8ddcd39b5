"""Sign-in for the web page: one admin password, server-side sessions, throttled attempts
(web/signin_throttle.py), and only same-site paths to go to after signing in (`safe_next`).

The session cookie is HttpOnly and SameSite=Strict (and Secure when the request came over TLS);
the session itself (expiry, CSRF token, password generation) stays in this process's memory, so
a restart or a password reset signs everybody out. Every path needs a session except PUBLIC ones.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urljoin, urlsplit

import bottle

from web import csrf
from web.pages import render
from web.replies import json_error
from web.sessions import Sessions, current
from web.signin_throttle import KnownBrowsers, Throttle, Ticket

COOKIE = "hearth_session"
KNOWN_COOKIE = "hearth_known"         # a browser that signed in before (see web/signin_throttle.py)
KNOWN_DAYS = 365
# the device API, firmware downloads, the health check, /metrics (own rule), static files, sign-in
PUBLIC_PREFIXES = ("/v1/", "/firmware/", "/static/")
PUBLIC_PATHS = {"/health", "/metrics", "/login", "/favicon.ico"}
MAX_NEXT_CHARS = 2000
URL_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def client_addr() -> str:
    """The peer's address as the socket saw it (never X-Forwarded-For, which anyone can send)."""
    return bottle.request.environ.get("REMOTE_ADDR") or "?"


def secure_request() -> bool:
    return bottle.request.urlparts.scheme == "https"


def install(app: bottle.Bottle, service) -> None:
    sessions = Sessions(service.settings.web.session_hours)
    throttle = Throttle()
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
        if current():
            return bottle.redirect("/")
        token = csrf.new_token()
        bottle.response.set_cookie(csrf.LOGIN_COOKIE, token, path="/login", httponly=True,
                                   samesite="strict", secure=secure_request(), max_age=3600)
        return render("login", title="Sign in", login_csrf=token, error="", next=_next())

    @app.post("/login")
    def login():
        request = bottle.request
        expected = request.get_cookie(csrf.LOGIN_COOKIE) or ""
        try:
            csrf.check(request, expected)
        except csrf.CsrfError:
            bottle.response.status = 403
            return _login_again(render, "This sign-in form has expired. Please try again.")
        known = KnownBrowsers(service.admin.cookie_key())
        ticket = throttle.admit(client_addr(), known.check(request.get_cookie(KNOWN_COOKIE)))
        if not isinstance(ticket, Ticket):
            wait = int(ticket) + 1
            bottle.response.status = 429
            bottle.response.set_header("Retry-After", str(wait))
            return _login_again(render, f"Too many wrong passwords. Try again in {wait} seconds.")
        password = request.forms.getunicode("password") or ""
        if not service.admin.verify(password):
            bottle.response.status = 401
            return _login_again(render, "That password is not right.")
        throttle.succeeded(ticket)
        session = sessions.create(service.admin.generation())
        bottle.response.set_cookie(COOKIE, session.token, path="/", httponly=True, samesite="strict",
                                   secure=secure_request(), max_age=sessions.ttl)
        if not ticket.known:
            bottle.response.set_cookie(KNOWN_COOKIE, known.issue(), path="/login", httponly=True, samesite="strict",
                                       secure=secure_request(), max_age=KNOWN_DAYS * 86400)
        bottle.response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
        return bottle.redirect(_next(), 303)

    @app.post("/logout")
    def logout():
        sessions.drop(bottle.request.get_cookie(COOKIE))
        bottle.response.delete_cookie(COOKIE, path="/")
        return bottle.redirect("/login", 303)


def _next() -> str:
    request = bottle.request
    target = request.forms.getunicode("next") if request.method == "POST" else request.query.getunicode("next")
    target = safe_next(target)
    # belt and braces: resolved the way bottle.redirect resolves it, it stays on this site
    if urlsplit(urljoin(request.url, target)).netloc != urlsplit(request.url).netloc:
        return "/"
    return target


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else "/": never an open redirect.

    Refused: anything with a scheme or host (`https:x`, `//x`), backslashes, whitespace and control
    characters (browsers drop tabs and newlines: `/\t/x` becomes `//x`), dot segments (`/./x`
    resolves with what follows), and paths that turn
    into any of these when percent-decoded again (`/%2F%2Fx`, `/%5Cx`, `/%09/x`)."""
    if not target or len(target) > MAX_NEXT_CHARS or not _plain(target):
        return "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    for _ in range(4):
        if not _local_path(path):
            return "/"
        decoded = unquote(path)
        if decoded == path:
            return quote(target, safe=URL_SAFE)     # non-ASCII as %XX: the header stays plain ASCII
        path = decoded
    return "/"                                 # still encoded after four rounds: not a link of ours


def _plain(text: str) -> bool:
    return "\\" not in text and not any(ord(c) <= 0x20 or 0x7f <= ord(c) <= 0x9f for c in text)


def _local_path(path: str) -> bool:
    if not _plain(path) or not path.startswith("/") or path.startswith("//"):
        return False
    if any(segment in (".", "..") for segment in path.split("/")):
        return False                           # resolving them could leave "//host" behind
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc


def _login_again(render, error: str) -> str:
    token = csrf.new_token()
    bottle.response.set_cookie(csrf.LOGIN_COOKIE, token, path="/login", httponly=True,
                               samesite="strict", secure=secure_request(), max_age=3600)
    return render("login", title="Sign in", login_csrf=token, error=error, next=_next())
