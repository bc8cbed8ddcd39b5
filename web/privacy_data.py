"""The Privacy page's datasets and wake word review (docs/web.md, "Datasets" and "Wake word review").

    GET  /api/privacy/datasets                 imported datasets
    POST /api/privacy/datasets/import          {"path", "name"?}: a zip or folder on the box (a USB stick)
    POST /api/privacy/datasets/remove          {"name"}
    GET  /api/privacy/wake                     ?device=&kind=&mark=: clips, counts per device, the switch
    GET  /api/privacy/wake/<day>/<stem>.wav    one clip's audio
    POST /api/privacy/wake/mark                {"clip", "mark"}: false_wake | missed_wake | fine | ''
    POST /api/privacy/wake/delete              delete every clip
"""

from __future__ import annotations

from pathlib import Path

import bottle

from appliance.datasets.checks import DatasetRefused
from appliance.wake.review import KINDS, ReviewError
from web.pages import as_json, body, form_reply, wants_json


def page_values(service) -> dict:
    """What privacy_data.tpl shows (the Privacy page includes it)."""
    q = bottle.request.query
    review = getattr(service, "wake_review", None)
    mark = q.getunicode("mark", "any")
    return {"datasets": service.datasets.list(),
            "wake": {"on": service.settings.privacy.store_wake_clips, "available": review is not None,
                     "counts": review.counts() if review else {},
                     "clips": review.clips(q.getunicode("device", ""), q.getunicode("kind", ""),
                                           None if mark == "any" else mark, limit=100) if review else [],
                     "filter": {"device": q.getunicode("device", ""), "kind": q.getunicode("kind", ""), "mark": mark},
                     "kinds": KINDS}}


def install(app: bottle.Bottle, service, page) -> None:
    """`page(errors=..., values=...)`: the Privacy page, re-rendered for a plain form's errors."""

    @app.get("/api/privacy/datasets")
    def list_datasets():
        return as_json({"datasets": service.datasets.list()})

    @app.post("/api/privacy/datasets/import")
    def import_dataset():
        fields = body()
        path = str(fields.get("path") or "").strip()
        if not path.startswith("/"):
            return form_reply(page, "/privacy", {"path": "give the full path of a zip file or folder on the box "
                                                         "(a USB stick: /media/...)"}, values=fields)
        try:
            facts = service.datasets.import_path(Path(path), str(fields.get("name") or "").strip() or None)
        except DatasetRefused as exc:
            if wants_json():
                return as_json({"error": exc.code, "message": str(exc), "file": exc.file, "reason": exc.reason,
                                "errors": {"path": str(exc)}}, 422)
            return form_reply(page, "/privacy", {"path": str(exc)}, values=fields)
        return form_reply(page, "/privacy", notice=f"Imported {facts['name']}: {facts['rows']} utterances, "
                                                   f"{facts['audio_s']:.0f} s of audio.", data={"dataset": facts})

    @app.post("/api/privacy/datasets/remove")
    def remove_dataset():
        name = str(body().get("name") or "")
        try:
            service.datasets.remove(name)
        except DatasetRefused as exc:
            return as_json({"error": exc.code, "message": str(exc)}, 404 if exc.code == "not_found" else 422)
        return form_reply(page, "/privacy", notice=f"Removed the dataset {name}.", data={"removed": name})

    @app.get("/api/privacy/wake")
    def wake_clips():
        return as_json(page_values(service)["wake"])

    @app.get("/api/privacy/wake/<day>/<stem>.wav")
    def wake_audio(day, stem):
        try:
            path = service.wake_review.audio(f"{day}/{stem}")
        except ReviewError as exc:
            return as_json({"error": exc.code, "message": str(exc)}, 404 if exc.code == "not_found" else 400)
        reply = bottle.static_file(path.name, root=str(path.parent), mimetype="audio/wav")
        reply.set_header("Cache-Control", "no-store")
        return reply

    @app.post("/api/privacy/wake/mark")
    def mark_clip():
        fields = body()
        try:
            meta = service.wake_review.mark(str(fields.get("clip") or ""), str(fields.get("mark") or ""))
        except ReviewError as exc:
            return as_json({"error": exc.code, "message": str(exc)}, 404 if exc.code == "not_found" else 422)
        said = {"false_wake": "a false wake", "missed_wake": "a missed wake", "fine": "fine", "": "not reviewed"}
        return form_reply(page, "/privacy#wake-review", notice=f"Marked {said[meta['mark']]}.", data={"clip": meta})

    @app.post("/api/privacy/wake/delete")
    def delete_clips():
        days = service.wake_review.delete_all()
        return form_reply(page, "/privacy#wake-review", notice=f"Deleted every wake word clip ({days} day(s)).",
                          data={"deleted_days": days})
