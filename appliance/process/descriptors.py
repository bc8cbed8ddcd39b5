"""Open files: Hearth's sockets never take the descriptors its own files need.

A process gets 1,024 open files unless its unit says otherwise (systemd's default soft limit), and
every TCP connection is one. At start Hearth raises its soft limit to the hard one (at most
`CEILING`), then checks that the listeners' caps ([web] and [wyoming] max_connections) leave
`RESERVED` descriptors for its own files: model files, the registry, snapshots, the log, the broker
connection, worker pipes. Caps that would not fit are lowered for this run, with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import resource

log = logging.getLogger(__name__)
RESERVED = 256          # Hearth's own files and sockets besides the listeners' connections (measured: ~45 idle)
CEILING = 65536


def raise_limit() -> int:
    """Soft open-file limit up to the hard one (bounded); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard if hard != resource.RLIM_INFINITY else CEILING, CEILING)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return soft


def fit(settings, limit: int):
    """`settings` with the web and Wyoming connection caps lowered, if needed, to leave RESERVED free."""
    web, wyo = settings.web, settings.wyoming
    wanted = web.max_connections + (wyo.max_connections if wyo.enabled else 0)
    room = limit - RESERVED
    if wanted <= room:
        return settings
    share = max(room, 32) / wanted
    web_cap = max(8, int(web.max_connections * share))
    wyo_cap = max(8, int(wyo.max_connections * share))
    log.warning("only %d open files allowed (ulimit -n / LimitNOFILE): web connections capped at %d and Wyoming "
                "at %d for this run, to keep %d for Hearth's own files", limit, web_cap, wyo_cap, RESERVED)
    return dataclasses.replace(
        settings,
        web=dataclasses.replace(web, max_connections=web_cap,
                                max_connections_per_address=min(web.max_connections_per_address, web_cap)),
        wyoming=dataclasses.replace(wyo, max_connections=wyo_cap,
                                    max_connections_per_address=min(wyo.max_connections_per_address, wyo_cap)))
