"""The System page's software update: both slots, the last result, upload, the cache's offer, reboot.

    GET  /api/system/update          slots, last result, install progress, the cache's offer (JSON)
    POST /api/system/update/upload   the bundle as the raw body (application/octet-stream, X-CSRF-Token);
                                     spooled by the edge straight to <data>/update/incoming/, verified,
                                     then installed in the background: 202, or 422 with the refusal's code
    POST /api/system/update/cached   {"version": V}: install the release the firmware cache offers (202)
    POST /api/system/update/reboot   run [update] reboot_command once a bundle is installed (202; 500
                                     reboot_failed with what it said when it fails)
    POST /api/system/update/channel  {"channel": "stable"|"beta"}: which hearth-appliance releases the
                                     box is offered ([update] channel, saved, live; 422 for another value)

Installs run the same actions as `hearth update install` over the control channel
(appliance/update/room.py); the page polls GET /api/system/update for the progress.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import bottle

from appliance.state import live
from appliance.update.errors import NotAppliance, UpdateError
from appliance.update.state import boot_id
from web.body_limits import UPDATE_UPLOAD
from web.pages import as_json, bad_request, body, form_reply

log = logging.getLogger(__name__)

VERIFY_WAIT_S = 120.0          # the upload's answer waits this long for the verification
REBOOT_WAIT_S = 10.0           # `systemctl reboot` queues the reboot and returns at once
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def error_reply(exc: UpdateError) -> bottle.HTTPResponse:
    status = 409 if exc.code == "update_busy" else 503 if isinstance(exc, NotAppliance) else 422
    return as_json({"error": exc.code, "message": str(exc)}, status)


def install(app: bottle.Bottle, service, page=None) -> None:
    """`page(errors=..., values=...)`: the System page again, for a form posted without JavaScript."""
    updates = service.updates

    @app.get("/api/system/update")
    def update_status():
        return as_json(updates.status())

    @app.post(UPDATE_UPLOAD)
    def upload():
        spooled = getattr(bottle.request.environ.get("wsgi.input"), "name", None)
        if not bottle.request.content_length or not isinstance(spooled, str):
            return bad_request("send the bundle (.raucb) as the request body", "no_bundle")
        try:
            updates.installer.system()
        except UpdateError as exc:
            return error_reply(exc)
        name = SAFE_NAME.sub("_", bottle.request.get_header("X-File-Name") or "bundle.raucb")[-80:]
        staged = updates.incoming / f"upload-{int(time.time())}-{os.getpid()}-{name}"
        os.replace(spooled, staged)        # the edge's spool file, on the same disk: now ours
        bottle.request.environ["wsgi.input"].close()     # RAUC wants the only open descriptor (F_SETLEASE)
        return _start(lambda: updates.install_in_background(staged, "upload", remove=True), staged)

    @app.post("/api/system/update/cached")
    def install_cached():
        version = str(body().get("version") or "")
        if updates.offer is None:
            return bad_request("the firmware cache does not run here", "no_offer")
        try:
            path = updates.offer.path_for(version)
        except UpdateError as exc:
            return error_reply(exc)
        return _start(lambda: updates.install_in_background(path, "cache"), None)

    @app.post("/api/system/update/channel")
    def set_channel():
        fields = body()
        channel = fields.get("channel")
        try:
            live.apply(service, "update", {"channel": "" if channel is None else channel})
        except live.InvalidSettings as exc:
            return form_reply(page, "/system", {"channel": "; ".join(exc.errors.values())}, values=fields)
        offer = updates.status()["offer"]
        now = f"; the cache offers {offer['version']} ({offer['channel']})" if offer else ""
        return form_reply(page, "/system", notice=f"This box follows the {updates.channel} channel{now}.",
                          data={"channel": updates.channel, "offer": offer})

    @app.post("/api/system/update/reboot")
    def reboot():
        last = updates.last.read() or {}
        if last.get("result") != "installed" or last.get("boot_id") != boot_id():
            return bad_request("nothing is installed and waiting for a reboot", "nothing_to_boot", 409)
        command = shlex.split(service.settings.update.reboot_command)
        log.warning("rebooting into slot %s for %s (%s)", last.get("target"), last.get("version"), " ".join(command))
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=REBOOT_WAIT_S, start_new_session=True)
        except OSError as exc:
            return bad_request(f"could not run '{command[0]}': {exc.strerror}", "reboot_failed", 500)
        except subprocess.TimeoutExpired:
            done = None                    # still running while the system goes down: that is a reboot
        if done is not None and done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-300:] or f"exit status {done.returncode}"
            return bad_request(f"'{' '.join(command)}' failed: {said} ([update] reboot_command)", "reboot_failed", 500)
        return as_json({"ok": True, "message": f"Rebooting into {last.get('version')}: the page comes back when "
                                               "the box is up."}, 202)

    def _start(begin, staged: Path | None) -> bottle.HTTPResponse:
        try:
            begin()
        except UpdateError as exc:
            if staged is not None:
                staged.unlink(missing_ok=True)
            return error_reply(exc)
        progress = _verified(updates)
        if progress["state"] == "failed":
            return as_json({"error": progress["error"] or "bad_bundle", "message": progress["message"]}, 422)
        return as_json({"ok": True, "version": progress["version"], "progress": progress,
                        "message": f"Verified {progress['version']}; installing into the other slot."}, 202)


def _verified(updates) -> dict:
    """The progress once the background install got past verifying (or gave up waiting)."""
    deadline = time.monotonic() + VERIFY_WAIT_S
    while time.monotonic() < deadline:
        progress = updates.installer.progress.to_dict()
        if progress["state"] != "verifying":
            return progress
        time.sleep(0.05)
    return updates.installer.progress.to_dict()
