"""What every page shares: the layout, navigation, request bodies, JSON replies and form replies.

Pages are bottle templates in web/views/ (base.tpl is the layout). A JSON route answers JSON; when
a browser without JavaScript posts the same route as a plain form, `form_reply` re-renders the
page with the messages next to the fields (422) or sends the browser back to the page (303).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import bottle

from web import csrf
from web.sessions import current

VIEWS = Path(__file__).resolve().parent / "views"
STATIC = Path(__file__).resolve().parent / "static"
NAV = [("/", "Overview"), ("/devices", "Devices"), ("/voice", "Voice"), ("/updates", "Updates"),
       ("/privacy", "Privacy"), ("/system", "System")]


def render(name: str, **values) -> str:
    session = current()
    values.setdefault("title", name.title())
    values.setdefault("errors", {})
    values.setdefault("notice", bottle.request.query.getunicode("notice") or "")
    return bottle.template(name, template_lookup=[str(VIEWS)], nav=NAV, path=bottle.request.path,
                           csrf=session.csrf if session else "", signed_in=session is not None, **values)


def wants_json() -> bool:
    ctype = (bottle.request.content_type or "").split(";")[0].strip()
    accept = bottle.request.get_header("Accept") or ""
    return ctype == "application/json" or (bottle.request.method == "GET" and "application/json" in accept) \
        or bottle.request.get_header(csrf.HEADER) is not None


def body() -> dict:
    """The request's fields, from a JSON object or a form (without the CSRF field)."""
    request = bottle.request
    if (request.content_type or "").startswith("application/json"):
        try:
            data = json.loads(request.body.read() or b"{}")
        except (ValueError, RecursionError):     # RecursionError: nested too deeply (15,000 [ once gave 500)
            raise bad_request("the body is not valid JSON (or nested too deeply)", "bad_json") from None
        if not isinstance(data, dict):
            raise bad_request("the body must be a JSON object")
        return data
    return {k: request.forms.getunicode(k) for k in request.forms.keys() if k != csrf.FIELD}


def as_json(data, status: int = 200) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(status=status, body=json.dumps(data, default=str),
                               headers={"Content-Type": "application/json", "Cache-Control": "no-store"})


def bad_request(message: str, code: str = "bad_request", status: int = 400) -> bottle.HTTPResponse:
    return as_json({"error": code, "message": message}, status)


def form_reply(page, redirect_to: str, errors: dict | None = None, notice: str = "", data: dict | None = None,
               values: dict | None = None):
    """JSON for the pages' scripts; for a plain form post, the page again (errors) or a redirect."""
    if wants_json():
        if errors:
            return as_json({"error": "invalid", "message": "Nothing was changed: please fix the fields marked below.",
                            "errors": errors}, 422)
        return as_json({"ok": True, "message": notice, **(data or {})})
    if errors:
        bottle.response.status = 422
        return page(errors=errors, values=values or {})
    sep = "&" if "?" in redirect_to else "?"
    return bottle.HTTPResponse(status=303, headers={"Location": f"{redirect_to}{sep}notice={quote(notice)}"})


def install(app: bottle.Bottle) -> None:
    @app.get("/static/<name:path>")
    def static(name):
        reply = bottle.static_file(name, root=str(STATIC))
        reply.set_header("Cache-Control", "public, max-age=3600")
        return reply

    @app.hook("after_request")
    def security_headers():
        headers = bottle.response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if not bottle.request.path.startswith(("/v1/", "/firmware/")):
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Content-Security-Policy",
                               "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self' blob:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'")
