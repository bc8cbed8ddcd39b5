"""Privacy: opt-in storing of utterances as household training data, retention, export, delete.

    GET  /privacy              the page
    GET  /api/privacy          settings and what is stored
    POST /api/privacy          {"store_utterances": bool, "retention_days": int}
    GET  /api/privacy/export   everything stored, as one zip
    POST /api/privacy/delete   delete everything stored
"""

from __future__ import annotations


import bottle

from appliance.state import live
from web.format import attachment
from web import privacy_data
from web.pages import as_json, body, form_reply, render


def state(service) -> dict:
    p = service.settings.privacy
    return {"store_utterances": p.store_utterances, "retention_days": p.retention_days,
            "stored": service.utterances.summary()}


def install(app: bottle.Bottle, service) -> None:
    def page(errors=None, values=None):
        return render("privacy", title="Privacy", p={**state(service), **(values or {})},
                      recent=service.utterances.recent(10), errors=errors or {}, **privacy_data.page_values(service))

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
        return attachment(service.utterances.export_zip(), "application/zip", "hearth-utterances-%Y%m%d-%H%M%S.zip")

    @app.post("/api/privacy/delete")
    def delete():
        days = service.utterances.delete_all()
        return form_reply(page, "/privacy", notice=f"Deleted all stored utterances ({days} day(s)).",
                          data={"deleted_days": days})
