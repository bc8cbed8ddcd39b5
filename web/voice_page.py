"""Voice: speech-to-text engine and language, the default voice with a "speak this" box, the wake
word and its sensitivity, and how much silence ends an utterance.

    GET  /voice              the page
    GET  /api/voice          current voice settings, the choices, the box's model choice and the word list
    POST /api/voice          change them: {"tts.voice": ..., "stt.model": ..., "endpoint.silence_ms": ..., ...}
    POST /api/voice/speak    {"text": ..., "voice": ...} -> audio/wav (what the page's <audio> plays)
    POST /api/voice/words    {"words": ["bilge pump", "Freya"] or one per line} -> the household's words
    POST /api/voice/measure  time every installed model on this box again and choose (appliance/stt/choice.py)
"""

from __future__ import annotations

import threading
import time

import bottle

from appliance.state import live
from appliance.stt import choice as stt_choice
from appliance.stt.models import CATALOGUE
from appliance.stt.vocabulary import VocabularyError
from appliance.audio.pcm import wav_bytes
from mqtt.messages import ProtocolError
from web import review_routes
from web.pages import as_json, bad_request, body, form_reply, render

FIELDS = ("stt.engine", "stt.model", "stt.budget_ms", "stt.language", "tts.voice", "wake.model",
          "wake.sensitivity", "endpoint.silence_ms")
_measuring = threading.Lock()



def current(service) -> dict:
    s = service.settings
    kept = stt_choice.load(s.data_dir)
    return {
        "stt.engine": s.stt.engine, "stt.model": s.stt.model or "auto", "stt.budget_ms": s.stt.budget_ms,
        "stt.running": service.engine.name, "stt.running_model": str(service.engine.model),
        "stt.fallback": getattr(service.engine, "fallback", ""),
        "stt.choice": kept.to_dict() if kept else None, "stt.measuring": _measuring.locked(),
        "stt.words": service.vocabulary.words(),
        "stt.language": s.stt.language, "tts.voice": s.tts.voice, "wake.model": s.wake.model,
        "wake.sensitivity": s.wake.sensitivity, "endpoint.silence_ms": s.endpoint.silence_ms,
    }


def choices(service) -> dict:
    return {"stt.engine": ["faster-whisper", "vosk"], "stt.model": live.stt_models(), "stt.language": live.LANGUAGES,
            "tts.voice": sorted(service.voices.available), "wake.model": live.wake_models()}


def set_words(service, raw) -> list[str]:
    """The household's word list from the page: a list, or text with one word or phrase a line."""
    if isinstance(raw, str):
        raw = [line for line in raw.splitlines() if line.strip()]
    words = service.vocabulary.replace(raw)
    service.refresh_vocabulary()
    return words


def measure(service) -> bool:
    """Time every installed model again, in the background; False when a measurement already runs."""
    if not _measuring.acquire(blocking=False):
        return False

    def run():
        try:
            stt_choice.current(service.settings.stt, service.settings.data_dir, service.timing_clip, remeasure=True)
        finally:
            _measuring.release()
    threading.Thread(target=run, name="stt-measure", daemon=True).start()
    return True


def change(service, fields: dict) -> tuple[dict, dict]:
    """Validate every field first; apply only when all are good. Returns (errors, result)."""
    by_section: dict[str, dict] = {}
    errors: dict[str, str] = {}
    for name, value in fields.items():
        if name not in FIELDS:
            errors[name] = "not a voice setting"
            continue
        section, key = name.split(".", 1)
        by_section.setdefault(section, {})[key] = value
    for section, values in by_section.items():
        try:
            live.validate(service, section, values)
        except live.InvalidSettings as exc:
            errors.update({f"{section}.{k}": v for k, v in exc.errors.items()})
    if errors:
        return errors, {}
    changed, restart = {}, []
    for section, values in by_section.items():
        result = live.apply(service, section, values)
        changed.update({f"{section}.{k}": v for k, v in result["changed"].items()})
        restart += result["restart_needed"]
    return {}, {"changed": changed, "restart_needed": restart}


def speak(service, text: str, voice: str | None) -> bytes:
    t0 = time.monotonic()
    name = service.speaker.check(text, voice or None)
    pcm = b"".join(service.speaker.stream(text, name))
    service.metrics.observe_ms("hearth_tts_seconds", (time.monotonic() - t0) * 1000)
    service.metrics.inc("hearth_web_speak_total")
    return wav_bytes(pcm, service.speaker.rate(name))


def install(app: bottle.Bottle, service) -> None:
    def page(errors=None, values=None):
        return render("voice", title="Voice", v={**current(service), **(values or {})},
                      choices=choices(service), errors=errors or {},
                      accuracy={m.name: f"{m.held_out_wer:.2f}" for m in CATALOGUE.values()},
                      offers=service.review.offers())

    @app.get("/voice")
    def voice_page():
        return page()

    @app.get("/api/voice")
    def get_voice():
        return as_json({"settings": current(service), "choices": choices(service), "offers": service.review.offers()})

    @app.post("/api/voice")
    def post_voice():
        fields = body()
        errors, result = change(service, fields)
        notice = "Saved."
        if result.get("restart_needed"):
            notice = f"Saved. {', '.join(result['restart_needed'])} applies after a restart (System page)."
        return form_reply(page, "/voice", errors, notice, result, fields)

    @app.post("/api/voice/words")
    def post_words():
        fields = body()
        try:
            words = set_words(service, fields.get("words", ""))
        except VocabularyError as exc:
            return form_reply(page, "/voice", {"stt.words": str(exc)}, values=fields)
        return form_reply(page, "/voice", None, f"Saved {len(words)} household words.", {"words": words})

    @app.post("/api/voice/measure")
    def post_measure():
        started = measure(service)
        notice = ("Measuring each installed model on this box (a few seconds); the choice applies after a restart."
                  if started else "A measurement is already running.")
        return form_reply(page, "/voice", None, notice, {"measuring": True})

    @app.post("/api/voice/speak")
    def post_speak():
        fields = body()
        text = fields.get("text")
        voice = fields.get("voice")
        if not isinstance(text, str) or (voice is not None and not isinstance(voice, str)):
            return bad_request("text (and voice, if given) must be strings")
        try:
            wav = speak(service, text, voice)
        except ProtocolError as exc:
            return as_json({"error": exc.code, "message": exc.message, "errors": {"text": exc.message}}, 422)
        return bottle.HTTPResponse(body=wav, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store",
                                                      "Content-Length": str(len(wav))})

    review_routes.install_words(app, service, page)
