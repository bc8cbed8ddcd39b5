"""The Mycroft-compatible device API, at the `server.url` that mycroft-core and OpenVoiceOS use.

Pairing (code, activate) is open but rate limited and needs a person's confirmation; everything
else needs the device's access token (`Authorization: Bearer ...`) and only reaches that device's
own resources. Errors are a 4xx with {"error": code, "message": ...} and change nothing.
One exception, on purpose: while nobody has confirmed the code yet, activate answers 401 with a
plain-text body, because OpenVoiceOS' client treats any JSON body as its new identity.
"""

from __future__ import annotations

import functools
import hashlib
import json

import bottle

from appliance.audio.decode import AudioFileError, decode_file
from appliance.audio.pcm import ENGINE_BYTES_PER_S
from appliance.devices.errors import DeviceError, Forbidden, NotConfirmed
from appliance.process.broker import lan_address
from appliance.voice.shares import TooFast
from appliance.stt.decoder import QueueFull
from appliance.stt.oneshot import DecodeFailed, transcribe
from web.replies import json_error

TIME_FORMATS = {"24h": "full", "12h": "half"}
SEEN_EVERY_S = 5.0           # a device's last-seen time is written at most this often


class BadBody(DeviceError):
    code = "bad_json"


class TooLarge(DeviceError):
    status = 413
    code = "too_large"


def install(app: bottle.Bottle, service) -> None:
    devices = service.devices
    limits = service.settings.limits
    max_audio = int(limits.max_session_s * 48000 * 2 * 2)      # uncompressed 48 kHz stereo; FLAC is smaller

    def edge(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except NotConfirmed as exc:
                return bottle.HTTPResponse(status=401, body=exc.message + "\n", headers={"Content-Type": "text/plain"})
            except DeviceError as exc:
                return json_error(exc.status, exc.code, exc.message)
            except AudioFileError as exc:
                status = 413 if exc.code == "too_long" else 415 if exc.code == "unsupported_audio" else 400
                return json_error(status, exc.code, exc.message)
            except QueueFull as exc:
                return json_error(503, "busy", str(exc))
            except TooFast as exc:
                return json_error(429, "too_fast", str(exc))
            except DecodeFailed as exc:
                return json_error(503, "stt_failed", str(exc))
        return wrapper

    def body(limit: int) -> bytes:
        length = bottle.request.content_length
        if length > limit:
            raise TooLarge(f"body of {length} bytes is over the {limit}-byte limit")
        data = bottle.request.body.read(limit + 1)
        if len(data) > limit:
            raise TooLarge(f"body is over the {limit}-byte limit")
        return data

    def json_body() -> dict:
        try:
            data = json.loads(body(limits.max_json_bytes) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadBody(f"body is not JSON ({exc})") from None
        except RecursionError:                  # e.g. 15,000 nested [: JSON, but not for us
            raise BadBody("body is nested too deeply") from None
        if not isinstance(data, dict):
            raise BadBody("body must be a JSON object")
        return data

    def bearer() -> str:
        auth = bottle.request.get_header("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

    def device_of(uuid: str | None = None):
        device_id = devices.tokens.device_for(bearer())
        if uuid is not None and uuid != device_id:
            raise Forbidden("this token belongs to another device")
        # last seen: a registry write (a full sync), so a chore, newest per device, not on the request
        service.chores.latest(("seen", device_id), lambda: devices.registry.touch(device_id), device=device_id,
                              every=SEEN_EVERY_S)
        return devices.get(device_id)

    def reply(data, etag: bool = False):
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        headers = {"Content-Type": "application/json"}
        if etag:
            tag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
            headers["ETag"] = tag
            if tag in [t.strip() for t in bottle.request.get_header("If-None-Match", "").split(",")]:
                return bottle.HTTPResponse(status=304, headers={"ETag": tag})
        return bottle.HTTPResponse(body=text, headers=headers)

    def info(device) -> dict:
        return {"uuid": device.id, "name": device.name, "description": device.room, "room": device.room,
                "type": device.device_type, "platform": device.platform, "coreVersion": device.firmware,
                "enclosureVersion": "", "user": {"uuid": "household"}}

    @app.get("/v1/device/code")
    @edge
    def code():
        q = bottle.request.query
        state = q.getunicode("state", "") or ""
        code, token = devices.request_code(state, bottle.request.remote_addr, q.getunicode("type", "") or "mycroft",
                                           q.getunicode("platform", "") or "", q.getunicode("name", "") or "")
        return reply({"code": code, "token": token, "state": state,
                      "expiration": service.settings.devices.code_ttl_s})

    @app.post("/v1/device/activate")
    @edge
    def activate():
        data = json_body()
        state, token = data.get("state", ""), data.get("token", "")
        if not isinstance(state, str) or not isinstance(token, str):
            raise BadBody("state and token must be strings")
        firmware = data.get("coreVersion") or data.get("firmware") or ""
        platform = data.get("platform") or ""
        done = devices.activate(state, token, bottle.request.remote_addr,
                                platform if isinstance(platform, str) and platform != "unknown" else "",
                                firmware if isinstance(firmware, str) and firmware != "unknown" else "")
        broker = service.settings.broker
        host = broker.advertise_host or (bottle.request.urlparts.hostname or lan_address(broker.bind))
        tls = service.settings.broker.tls_port
        from appliance.process.broker import broker_config
        ca_files = broker_config(service.settings).tls_files if tls else None
        return reply({**done.tokens.mycroft(), "mqtt": {
            "host": host, "port": broker.port, "tls_port": tls, "username": done.device.id,
            "password": done.mqtt_password, "ca_cert": open(ca_files[0]).read() if ca_files else ""}})

    @app.get("/v1/auth/token")
    @edge
    def refresh():
        return reply(devices.tokens.refresh(bearer()).mycroft())

    @app.get("/v1/device/<uuid>")
    @edge
    def device_get(uuid):
        return reply(info(device_of(uuid)))

    @app.route("/v1/device/<uuid>", method="PATCH")
    @edge
    def device_patch(uuid):
        device = device_of(uuid)
        data = json_body()
        facts = {}
        for key, field in (("coreVersion", "firmware"), ("platform", "platform")):
            value = data.get(key)
            if value is not None:
                if not isinstance(value, str) or len(value) > 64:
                    raise BadBody(f"{key} must be text of at most 64 characters")
                facts[field] = value
        if facts:
            devices.registry.touch(device.id, **facts)
        return reply(info(devices.get(device.id)))

    @app.get("/v1/device/<uuid>/setting")
    @edge
    def setting(uuid):
        device = device_of(uuid)
        s = devices.settings(device.id)
        return reply({"uuid": device.id, "lang": s["language"], "systemUnit": s["units"],
                      "timeFormat": TIME_FORMATS[s["time_format"]], "dateFormat": "DMY", "optIn": False,
                      "listenerSetting": {"wakeWord": s["wake_word"].replace("_", " ")},
                      "ttsSettings": {"module": "hearth", "hearth": {"voice": s["voice"]}},
                      "location": mycroft_location(s["location"])}, etag=True)

    @app.get("/v1/device/<uuid>/location")
    @edge
    def location(uuid):
        device = device_of(uuid)
        return reply(mycroft_location(devices.settings(device.id)["location"]), etag=True)

    @app.get("/v1/device/<uuid>/skill/settings")
    @edge
    def skill_settings(uuid):
        return reply(devices.skills.list(device_of(uuid).id), etag=True)

    @app.put("/v1/device/<uuid>/settingsMeta")
    @edge
    def settings_meta(uuid):
        device = device_of(uuid)
        devices.skills.put_meta(device.id, json_body())
        return reply({"uuid": device.id})

    @app.post("/v1/stt")
    @edge
    def stt():
        device = device_of()
        lang = bottle.request.query.getunicode("lang", "") or ""
        # its fair share: no faster than limits.audio_rate x real time on average (in debt: refused
        # before the file is decoded)
        service.sessions.guard.charge(device.id, 0.0)
        pcm = decode_file(body(max_audio), limits.max_session_s)
        service.sessions.guard.charge(device.id, len(pcm) / ENGINE_BYTES_PER_S)
        language = lang.split("-")[0].lower() or None
        text = transcribe(service.decoder, pcm, language, device.id)
        service.metrics.inc("hearth_http_stt_total")
        return reply([text] if text else [])


def mycroft_location(loc: dict) -> dict:
    return {"city": {"name": loc["name"], "state": {"name": "", "country": {"name": "", "code": ""}}},
            "coordinate": {"latitude": loc["latitude"], "longitude": loc["longitude"]},
            "timezone": {"code": loc["timezone"], "name": loc["timezone"]}}
