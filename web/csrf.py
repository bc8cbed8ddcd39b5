"""CSRF tokens: one per signed-in session, required on every state-changing request.

Forms carry it as the hidden field `csrf`; the pages' JavaScript sends it as the `X-CSRF-Token`
header on JSON calls. The login form, which comes before any session, uses a short-lived token
bound to a cookie of its own (double submit). SameSite=Strict cookies are the second wall.
"""

from __future__ import annotations

import hmac
import secrets

import bottle

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
HEADER = "X-CSRF-Token"
FIELD = "csrf"
LOGIN_COOKIE = "hearth_login"


class CsrfError(PermissionError):
    pass


def new_token() -> str:
    return secrets.token_urlsafe(32)


def presented(request: bottle.BaseRequest) -> str:
    """The token the request carries: header first, then the form field (never the query string)."""
    token = request.get_header(HEADER)
    if token:
        return token
    ctype = (request.content_type or "").split(";")[0].strip()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.forms.get(FIELD) or ""
    return ""


def check(request: bottle.BaseRequest, expected: str) -> None:
    if request.method in SAFE_METHODS:
        return
    got = presented(request)
    if not got or not expected or not hmac.compare_digest(got.encode(), expected.encode()):
        raise CsrfError("missing or wrong CSRF token: reload the page and try again")
