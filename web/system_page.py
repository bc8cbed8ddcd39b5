"""System: recent log lines, restarting the services, one-file backup and restore.

    GET  /system               the page
    GET  /api/system/logs      recent log lines (?level=WARNING&limit=200)
    POST /api/system/restart   restart Hearth (the process re-executes itself; the page reconnects)
    GET  /api/system/backup    download config + registry as one .tar.gz
    POST /api/system/restore   upload such a file (multipart field "backup")
    GET  /api/system/support-bundle   the support bundle for a helper (web/support_routes.py)
    .../api/system/update...   software update of the box itself (web/update_routes.py)
"""

from __future__ import annotations


import bottle

from appliance.state import backup

from appliance.process import restart
from appliance.update.state import boot_id
from web import support_routes, update_routes
from web.format import attachment
from web.pages import as_json, bad_request, form_reply, render


def install(app: bottle.Bottle, service) -> None:
    def page(errors=None, values=None):
        return render("system", title="System", logs=service.logs.recent(150), errors=errors or {},
                      restartable=restart.supported(service), update=service.updates.status(),
                      boot_id=boot_id())

    support_routes.install(app, service)
    update_routes.install(app, service, page)

    @app.get("/system")
    def system_page():
        return page()

    @app.get("/api/system/logs")
    def logs():
        try:
            limit = max(1, min(500, int(bottle.request.query.get("limit", "200"))))
        except ValueError:
            return bad_request("limit must be a whole number")
        level = bottle.request.query.get("level", "INFO")
        if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            return bad_request("level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return as_json({"lines": service.logs.recent(limit, level)})

    @app.post("/api/system/restart")
    def restart_route():
        if not restart.supported(service):
            return form_reply(page, "/system", {"restart": "this Hearth was not started by 'hearth run' or "
                                                           "'hearth serve'; restart it where it was started"})
        restart.request(service)
        return form_reply(page, "/system", notice="Restarting: the page reconnects in a few seconds.",
                          data={"restarting": True})

    @app.get("/api/system/backup")
    def download_backup():
        return attachment(backup.create(service.settings, service.store.path), "application/gzip",
                          "hearth-backup-%Y%m%d-%H%M%S.tar.gz")

    @app.post("/api/system/restore")
    def upload_restore():
        upload = bottle.request.files.get("backup")
        if upload is None:
            return form_reply(page, "/system", {"backup": "choose a backup file (.tar.gz) first"})
        try:
            result = backup.restore(service, upload.file)
        except backup.BackupError as exc:
            return form_reply(page, "/system", {"backup": str(exc)})
        return form_reply(page, "/system", notice="Restored configuration and registry. Restart to apply "
                                                  "network settings (ports, addresses).", data=result)
