"""The Privacy page's "What Hearth heard" and the Voice page's words from corrections.

    GET  /api/privacy/utterances                          ?device=&day=&state=&limit=&offset=: the list
    GET  /api/privacy/utterances/<day>/<stem>/audio       the WAV the engine heard (the page's <audio>)
    POST /api/privacy/utterances/<day>/<stem>/review      {"state": "right"|"wrong"|"unreviewed", "corrected"?: "..."}
    POST /api/privacy/utterances/<day>/<stem>/consent     {"allow": bool}: the signed-in admin allows its export
    POST /api/privacy/utterances/<day>/<stem>/delete      this utterance, everywhere on the box
    POST /api/voice/words/accept                          {"word"}: onto the household's list
    POST /api/voice/words/dismiss                         {"word"}: no correction offers it any more

The dataset itself is GET /api/privacy/export (web/privacy_page.py, appliance/voice/dataset.py).
"""

from __future__ import annotations

import tempfile
import time

import bottle

from appliance.state.admin import ADMIN_USER
from appliance.stt.vocabulary import VocabularyError
from appliance.voice import dataset
from appliance.voice.review import NotFound, ReviewError, check_filter
from web.auth import client_addr
from web.pages import as_json, body, form_reply, wants_json

PAGE = 50
MAX_LIMIT = 500


def listing(service, strict: bool = False) -> dict:
    """The list filtered by the query string. A bad filter: ReviewError when `strict` (the JSON API),
    else everything and the reason (the page)."""
    q = bottle.request.query
    try:
        flt = check_filter(q.getunicode("device") or "", q.getunicode("day") or "", q.getunicode("state") or "")
    except ReviewError as exc:
        if strict:
            raise
        out = service.review.listing(limit=PAGE)
        out["problem"] = str(exc)
        return out
    offset = _int(q.get("offset"), 0, 0, 10**9)
    limit = _int(q.get("limit"), PAGE, 1, MAX_LIMIT)
    return service.review.listing(flt, limit, offset)


def _int(raw, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(raw)))
    except (TypeError, ValueError):
        return default


def _yes(value) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("on", "true", "yes", "1"))


def export_response(service) -> bottle.HTTPResponse:
    """The reviewed, allowed set as an audiofolder zip, spooled through a file on the data disk
    (unlinked at once: gone when the download ends), never held whole in memory."""
    spool = tempfile.TemporaryFile(dir=service.settings.data_dir)
    count = dataset.write_zip(service.review.allowed(), service.review.audio, spool)
    size = spool.tell()
    spool.seek(0)
    name = time.strftime("hearth-dataset-%Y%m%d-%H%M%S.zip")
    return bottle.HTTPResponse(body=spool, headers={
        "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(size), "Cache-Control": "no-store", "X-Hearth-Utterances": str(count)})


def install_privacy(app: bottle.Bottle, service, privacy_page) -> None:
    """The review routes; `privacy_page(errors=, values=)` renders the page for a plain form's errors."""
    def refused(exc: ReviewError, fields: dict):
        if wants_json():
            return as_json({"error": exc.code, "message": str(exc), "errors": {exc.field: str(exc)}}, 422)
        return form_reply(privacy_page, "/privacy", {exc.field: str(exc)}, values=fields)

    def missing(exc: NotFound):
        return as_json({"error": "not_found", "message": str(exc)}, 404)

    @app.get("/api/privacy/utterances")
    def get_utterances():
        try:
            return as_json(listing(service, strict=True))
        except ReviewError as exc:
            return as_json({"error": "invalid", "message": str(exc), "errors": {exc.field: str(exc)}}, 422)

    @app.get("/api/privacy/utterances/<day>/<stem>/audio")
    def get_audio(day, stem):
        try:
            wav = service.review.audio(f"{day}/{stem}")
        except NotFound as exc:
            return missing(exc)
        reply = bottle.static_file(wav.name, root=str(wav.parent), mimetype="audio/wav")
        reply.set_header("Cache-Control", "private, no-store")
        return reply

    @app.post("/api/privacy/utterances/<day>/<stem>/review")
    def post_review(day, stem):
        fields = body()
        try:
            row = service.review.mark(f"{day}/{stem}", fields.get("state"), fields.get("corrected"))
        except NotFound as exc:
            return missing(exc)
        except ReviewError as exc:
            return refused(exc, fields)
        notice = {"right": "Marked right.", "wrong": "Marked wrong." + (" Correction saved." if row["corrected"] else ""),
                  "unreviewed": "Marked not reviewed."}[row["state"]]
        if row["offered"]:
            notice += f" Hearth did not know: {', '.join(row['offered'])} (add it on the Voice page)."
        return form_reply(privacy_page, "/privacy", notice=notice, data={"utterance": row})

    @app.post("/api/privacy/utterances/<day>/<stem>/consent")
    def post_consent(day, stem):
        fields = body()
        allow = _yes(fields.get("allow"))
        try:
            row = service.review.consent(f"{day}/{stem}", allow, ADMIN_USER, client_addr())
        except NotFound as exc:
            return missing(exc)
        except ReviewError as exc:
            return refused(exc, fields)
        notice = "Allowed for export." if allow else "No longer allowed for export."
        return form_reply(privacy_page, "/privacy", notice=notice, data={"utterance": row})

    @app.post("/api/privacy/utterances/<day>/<stem>/delete")
    def post_delete(day, stem):
        try:
            service.review.delete(f"{day}/{stem}")
        except NotFound as exc:
            return missing(exc)
        return form_reply(privacy_page, "/privacy", notice="Deleted (its audio, text and review).",
                          data={"deleted": f"{day}/{stem}"})


def install_words(app: bottle.Bottle, service, voice_page) -> None:
    """Words that corrections offered, accepted onto the household's list or dismissed."""
    def word_from(fields: dict):
        word = fields.get("word")
        if not isinstance(word, str):
            raise VocabularyError("say which word (a string)")
        return word

    @app.post("/api/voice/words/accept")
    def post_accept():
        fields = body()
        try:
            word = word_from(fields)
            words = service.vocabulary.add(word, source="correction")
        except VocabularyError as exc:
            return form_reply(voice_page, "/voice", {"word": str(exc)}, values=fields)
        service.refresh_vocabulary()
        service.review.drop_offer(word)
        return form_reply(voice_page, "/voice", notice=f"Added “{' '.join(word.split())}” to the household words.",
                          data={"words": words})

    @app.post("/api/voice/words/dismiss")
    def post_dismiss():
        fields = body()
        try:
            word = word_from(fields)
        except VocabularyError as exc:
            return form_reply(voice_page, "/voice", {"word": str(exc)}, values=fields)
        dropped = service.review.drop_offer(word)
        return form_reply(voice_page, "/voice", notice=f"Dismissed “{word}”.", data={"dismissed": dropped})
