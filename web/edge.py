"""The HTTP edge: waitress, thinly subclassed so that one LAN host cannot take the web port down.

Waitress reads requests on one I/O thread (asyncore over poll) and hands only complete requests
to its worker threads, so a slow client costs a socket, never a thread. On top of that this adds:

- deadlines: the request line and headers within `[web] header_timeout_s` of their first byte
  (or of the connection, for the first request),
  the body within `body_timeout_s` plus one second per MIN_BODY_RATE bytes it may have, an idle
  keep-alive connection closed after `idle_timeout_s` (waitress' `channel_timeout`);
- connection caps: at most `max_connections_per_address` from one address (IPv6: one /64; the next gets a
  503 and is closed) and `max_connections` in all; when everything is taken, a newcomer from a
  quieter address takes the slot of the busiest address' stalest connection, so no one address
  can fill the server;
- a body limit per request, decided when the headers are complete (web/body_limits.py): a route
  that needs a sign-in accepts a body only from a signed-in session, so an unauthenticated upload
  is refused (401/413, JSON) before a byte of its body is buffered or spooled to a temp file;
- a route whose limit names a spool folder (an update bundle, hundreds of MB) gets its body
  written straight into a file there (`SpoolFile`, on the data partition), never into memory or
  /tmp; the app takes the file by its name (`wsgi.input.name`), and a file nobody took is deleted
  when the request ends.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import Counter
from pathlib import Path

from waitress.adjustments import Adjustments
from waitress.buffers import FileBasedBuffer, OverflowableBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.utilities import Error, RequestEntityTooLarge

from web.peers import peer_key

log = logging.getLogger(__name__)

MIN_BODY_RATE = 256 * 1024          # bytes/s a body must keep up (on top of body_timeout_s)
MAX_HEADER_BYTES = 32 * 1024        # request line + headers
STALE_S = 2.0                       # when every address holds as much, a slot silent this long goes to a newcomer


class JsonError(Error):
    """An error the edge answers itself, with the same JSON body the app uses."""

    def __init__(self, code: int, reason: str, error: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.error = code, reason, error

    def to_response(self, ident=None):
        body = json.dumps({"error": self.error, "message": self.body}).encode()
        return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body


class _Bounded:
    """The server's Adjustments with this request's body limit (waitress reads `max_request_body_size`)."""

    def __init__(self, adj: Adjustments, limit: int):
        self._adj, self.max_request_body_size = adj, limit + 1   # waitress refuses at >= the value

    def __getattr__(self, name):
        return getattr(self._adj, name)


class SpoolFile(FileBasedBuffer):
    """A request body written to a named file in `folder`; deleted on close unless renamed away."""

    def __init__(self, folder: Path, from_buffer=None):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f".upload-{secrets.token_hex(8)}.part"
        super().__init__(open(self.path, "w+b"), from_buffer)

    def close(self):
        super().close()
        self.path.unlink(missing_ok=True)


class SpoolBuffer(OverflowableBuffer):
    """waitress' body buffer, but every byte past the first few KiB goes to a SpoolFile."""

    def __init__(self, folder: Path):
        super().__init__(0)
        self.folder = folder

    def _set_large_buffer(self):
        old = self.buf
        self.buf = SpoolFile(self.folder, old)
        if hasattr(old, "close"):
            old.close()
        self.overflowed = True


class Request(HTTPRequestParser):
    """One request being read: its body limit is chosen once the headers are in."""

    limit = None
    body_deadline = float("inf")

    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()

    def parse_header(self, header_plus):
        super().parse_header(header_plus)
        edge: EdgeAdjustments = self.adj
        self.limit = edge.body_limits.for_request(self.command, self.path, self.headers)
        expected = self.content_length if not self.chunked else self.limit.max_bytes
        self.body_deadline = time.monotonic() + edge.body_timeout_s + min(expected, self.limit.max_bytes) / MIN_BODY_RATE
        self.adj = _Bounded(edge, self.limit.max_bytes)
        if self.limit.spool_dir is not None and self.body_rcv is not None:
            self.body_rcv.buf = SpoolBuffer(self.limit.spool_dir)

    def received(self, data):
        consumed = super().received(data)
        if self.error is not None:
            self.expect_continue = False     # never invite the body of a refused request
            if isinstance(self.error, RequestEntityTooLarge) and self.limit is not None:
                self.error = self.limit.refusal(self.content_length or self.body_bytes_received)
        return consumed


class Channel(HTTPChannel):
    parser_class = Request
    spoke = False                             # has the peer sent a byte yet

    def __init__(self, server, sock, addr, adj, map=None):
        self.host = peer_key(addr[0]) if addr else "?"      # the peer as caps count it (IPv6: its /64)
        super().__init__(server, sock, addr, adj, map=map)

    def received(self, data):
        self.spoke = self.spoke or bool(data)
        return super().received(data)

    def handle_close(self):
        # a request still arriving when its connection goes (cut off, or closed at its deadline):
        # waitress leaves its body buffer to the garbage collector; close it now, so a spooled
        # upload's file is deleted at once (SpoolFile.close)
        request, self.request = self.request, None
        if request is not None:
            request.close()
        super().handle_close()

    def expired(self, now: float) -> str | None:
        """Why this connection should be closed now (a deadline missed), or None."""
        request = self.request
        if self.requests:
            return None                       # being served
        if request is None:
            if not self.spoke and time.time() - self.creation_time > self.adj.header_timeout_s:
                return "headers"              # connected and never said a word
            return None                       # idle between requests (waitress' channel_timeout)
        if not request.headers_finished:
            if now - request.started > self.adj.header_timeout_s:
                return "headers"
        elif now > request.body_deadline:
            return "body"
        return None

    def stalled_s(self, mono: float, wall: float) -> float:
        """How long this slot has held on without a request to serve: headers arriving, or idle."""
        request = self.request
        if request is not None and not request.headers_finished:
            return mono - request.started
        return wall - self.last_activity

    def evictable(self) -> bool:
        """Holds a slot without being served: a request still arriving, or an idle keep-alive."""
        return not self.requests and not self.total_outbufs_len


class EdgeAdjustments(Adjustments):
    """waitress' settings plus Hearth's edge settings (read by Request and Server)."""

    def __init__(self, body_limits, header_timeout_s: float, body_timeout_s: float,
                 max_connections: int, max_per_address: int, **kw):
        super().__init__(**kw)
        self.body_limits = body_limits
        self.header_timeout_s, self.body_timeout_s = header_timeout_s, body_timeout_s
        self.max_connections, self.max_per_address = max_connections, max_per_address


class Server(TcpWSGIServer):
    channel_class = Channel
    refused = 0
    evicted = 0
    timed_out = 0

    def handle_accept(self):
        try:
            pair = self.accept()
        except OSError:
            return
        if pair is None:
            return
        conn, addr = pair
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        if not self._admit(peer_key(addr[0])):
            self.refused += 1
            _refuse(conn)
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def _admit(self, host: str) -> bool:
        channels = list(self.active_channels.values())
        counts = Counter(c.host for c in channels)
        if counts[host] >= self.adj.max_per_address:
            return False
        if len(channels) < self.adj.max_connections:
            return True
        held = counts.most_common(1)[0][1]
        if held > counts[host]:
            # the stalest idle slot of any address holding the most: with many addresses holding one
            # each (300 addresses x 2 slow headers once), a newcomer holding none still gets in
            victims = [c for c in channels if counts[c.host] == held and c.evictable()]
        else:
            # the newcomer holds as much as anyone: it gives up an idle slot of its own (e.g. its last
            # request's connection, not yet closed), or takes one stalled for STALE_S (a browser sends
            # its headers at once; a slow-header flood from many addresses does not)
            mono, wall = time.monotonic(), time.time()
            victims = ([c for c in channels if c.host == host and c.evictable()]
                       or [c for c in channels if c.evictable() and c.stalled_s(mono, wall) > STALE_S])
        if not victims:
            return False
        victim = min(victims, key=lambda c: c.last_activity)
        self.evicted += 1
        victim.handle_close()
        return True

    def maintenance(self, now):
        super().maintenance(now)              # idle keep-alive connections (channel_timeout)
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            why = channel.expired(mono)
            if why:
                self.timed_out += 1
                log.debug("closing %s: its request %s did not arrive in time", channel.host, why)
                channel.will_close = True


def _refuse(conn) -> None:
    body = json.dumps({"error": "too_many_connections",
                       "message": "too many connections from your address; close some and retry"}).encode()
    head = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
    try:
        conn.setblocking(False)
        conn.send(head + body)
    except OSError:
        pass
    finally:
        conn.close()


def create(app, web, body_limits) -> Server:
    """The web server for `app` on `[web] bind:port` with the edge settings of `web` ([web] settings)."""
    adj = EdgeAdjustments(
        body_limits, web.header_timeout_s, web.body_timeout_s, web.max_connections,
        web.max_connections_per_address,
        host=web.bind, port=web.port, threads=web.threads, ident="hearth",
        clear_untrusted_proxy_headers=True,
        channel_timeout=web.idle_timeout_s,
        cleanup_interval=1,                            # deadlines are checked every second
        connection_limit=web.max_connections + 16,     # waitress' own backstop (file descriptors)
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=body_limits.largest,
        asyncore_use_poll=True,                        # select() stops at 1024 descriptors
    )
    return Server(app, adj=adj)
