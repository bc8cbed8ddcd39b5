"""Privacy: opt-in storing of utterances as household training data, retention, export, delete.

    GET  /privacy              the page
    GET  /api/privacy          settings and what is stored
    POST /api/privacy          {"store_utterances": bool, "retention_days": int}
    GET  /api/privacy/export   the reviewed, allowed utterances as a dataset (audiofolder zip)
    POST /api/privacy/delete   delete everything stored

"What Hearth heard" (review, consent, delete one): web/review_routes.py.
"""

from __future__ import annotations

import bottle

from appliance.state import live
from web import privacy_data, review_routes
from web.pages import as_json, body, form_reply, render


def state(service) -> dict:
    p = service.settings.privacy
    return {"store_utterances": p.store_utterances, "retention_days": p.retention_days,
            "stored": service.utterances.summary()}


def install(app: bottle.Bottle, service) -> None:
    def page(errors=None, values=None):
        return render("privacy", title="Privacy", p={**state(service), **(values or {})},
                      recent=service.utterances.recent(10), errors=errors or {},
                      heard=review_routes.listing(service), **privacy_data.page_values(service))

    @app.get("/privacy")
    def privacy_page():
        return page()

    privacy_data.install(app, service, page)

    @app.get("/api/privacy")
    def get_privacy():
        return as_json({**state(service), "recent": service.utterances.recent(20)})

    @app.post("/api/privacy")
    def post_privacy():
        fields = body()
        try:
            live.apply(service, "privacy", fields)
        except live.InvalidSettings as exc:
            return form_reply(page, "/privacy", exc.errors, values=fields)
        service.utterances.sweep()
        on = service.settings.privacy.store_utterances
        notice = "Saved. " + ("New utterances are stored." if on else "Nothing new is stored.")
        return form_reply(page, "/privacy", notice=notice, data=state(service))

    @app.get("/api/privacy/export")
    def export():
        return review_routes.export_response(service)

    @app.post("/api/privacy/delete")
    def delete():
        days = service.utterances.delete_all()
        return form_reply(page, "/privacy", notice=f"Deleted all stored utterances ({days} day(s)).",
                          data={"deleted_days": days})

    review_routes.install_privacy(app, service, page)
