"""Fetch each image once: single-flight, resumable (HTTP Range), verified before it is kept.

Every caller that needs a file gets the same Future while its download runs, so twenty devices
asking at once cause one upstream download. The bytes go to `partial/<sha>.part`; every
`checkpoint_bytes` the file is fsynced and its length recorded, so after a crash, a kill -9 or a
power cut the next attempt truncates to the last durable length and asks upstream for the rest
with `Range: bytes=<n>-` (and `If-Range: <etag>` when upstream gave one). Only a file whose size
and sha256 match the release is moved into objects/.

Across processes the partial file's lock (`BlobStore.writing`) does the same job: a download
another process runs is waited for, and its verified object reused, never fetched twice. Every
failed download is reported (`on_failed`) before its Future fails, so the caller's backoff is
recorded before anyone can ask again.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from firmware_cache.blobs import BlobStore, Checkpoint
from firmware_cache.errors import FirmwareError, IntegrityError, NotReady, QuotaError, UpstreamError
from firmware_cache.manifest import Release
from firmware_cache.verify import Digests, check, digest_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class FetchOptions:
    timeout_s: float = 30.0               # connect and read timeout per request
    checkpoint_bytes: int = 8 << 20       # fsync and record progress this often
    attempts: int = 3                     # resumes within one fetch after a dropped connection
    user_agent: str = "hearth-firmware-cache/1"


class Fetcher:
    def __init__(
        self,
        blobs: BlobStore,
        options: FetchOptions,
        make_room: Callable[[int, Release], None],
        on_verified: Callable[[Release, Digests | None], None],
        on_progress: Callable[[Release, int], None] | None = None,
        workers: int = 2,
        on_failed: Callable[[Release, FirmwareError], None] | None = None,
    ):
        self.blobs = blobs
        self.options = options
        self._make_room = make_room
        self._on_verified = on_verified
        self._on_progress = on_progress
        self._on_failed = on_failed
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self._progress: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="firmware-fetch")

    def start(self, release: Release) -> Future:
        """The one Future for this file: done at once if cached, shared if already downloading."""
        with self._lock:
            future = self._inflight.get(release.sha256)
            if future is not None:
                return future
            if self.blobs.has(release.sha256):
                done: Future = Future()
                done.set_result(self.blobs.path(release.sha256))
                return done
            future = self._pool.submit(self._fetch, release)
            self._inflight[release.sha256] = future
            self._progress[release.sha256] = 0
        future.add_done_callback(lambda _f, sha=release.sha256: self._finished(sha))
        return future

    def fetch(self, release: Release, timeout: float | None = None) -> Path:
        return self.start(release).result(timeout)

    def in_flight(self) -> dict[str, int]:
        """sha256 -> bytes on disk so far, for every download running now."""
        with self._lock:
            return dict(self._progress)

    def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _finished(self, sha256: str) -> None:
        with self._lock:
            self._inflight.pop(sha256, None)
            self._progress.pop(sha256, None)

    # the download itself (a pool thread)
    def _fetch(self, release: Release) -> Path:
        sha = release.sha256
        try:
            with self.blobs.writing(sha, self._closing, on_wait=lambda: log.info(
                    "waiting for another process downloading %s %s", release.device_type, release.version)):
                if self.blobs.has(sha):        # another process verified it while we waited
                    self.blobs.drop_partial(sha)
                    self._on_verified(release, None)
                    return self.blobs.path(sha)
                return self._attempts(release)
        except InterruptedError:
            raise NotReady("Hearth is stopping; ask again when it is back") from None
        except FirmwareError as exc:
            if self._on_failed is not None:
                self._on_failed(release, exc)
            raise

    def _attempts(self, release: Release) -> Path:
        last: FirmwareError | None = None
        for _ in range(self.options.attempts):
            before = self._durable(release)
            try:
                return self._attempt(release)
            except UpstreamError as exc:
                last = exc
                if self._durable(release) <= before:
                    break  # no progress: upstream is down, not merely flaky
                log.info("resuming %s %s after: %s", release.device_type, release.version, exc)
        assert last is not None
        raise last

    def _durable(self, release: Release) -> int:
        return self.blobs.checkpoint(release.sha256).offset

    def _attempt(self, release: Release) -> Path:
        sha, part = release.sha256, self.blobs.partial(release.sha256)
        point = self.blobs.checkpoint(sha)
        durable = min(part.stat().st_size, release.size)      # a checkpoint past the file's end is not believed
        offset = point.offset if point.url == release.url and point.offset <= durable else 0
        if offset == 0:
            self.blobs.restart_partial(sha)
        os.truncate(part, offset)  # bytes past the last checkpoint may be garbage after a power cut
        self._make_room(release.size - offset, release)     # quota and disk: may we write this much?
        digests = digest_file(part, offset) if offset else Digests()
        if offset < release.size:
            digests = self._download(release, part, offset, point.etag, digests)
        try:
            check(release, digests, release.url)
        except IntegrityError:
            self.blobs.drop_partial(sha)
            raise
        path = self.blobs.commit(sha, part)
        self.blobs.drop_partial(sha)
        self._on_verified(release, digests)
        log.info("cached %s %s (%d bytes, sha256 %s)", release.device_type, release.version, release.size, sha)
        return path

    def _download(self, release: Release, part: Path, offset: int, etag: str, digests: Digests) -> Digests:
        headers = {"User-Agent": self.options.user_agent}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if etag:
                headers["If-Range"] = etag
        what = f"{release.device_type} {release.version} from {release.url}"
        try:
            with requests.get(release.url, headers=headers, stream=True, timeout=self.options.timeout_s) as resp:
                if resp.status_code == 206 and _range_start(resp) == offset:
                    pass
                elif resp.status_code == 200:
                    offset, digests = 0, Digests()  # upstream ignored the range or the file changed
                elif resp.status_code == 416:
                    self.blobs.drop_partial(release.sha256)
                    raise UpstreamError(f"upstream refused to resume {what} (HTTP 416); it will start over next time")
                else:
                    raise UpstreamError(f"upstream answered HTTP {resp.status_code} for {what}; check the manifest URL")
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and offset + int(length) != release.size:
                    raise IntegrityError(
                        f"upstream offers {offset + int(length)} bytes for {what}, the manifest says {release.size}; not downloaded"
                    )
                new_etag = resp.headers.get("ETag", "")
                new_etag = "" if new_etag.startswith("W/") else new_etag
                return self._write(release, part, offset, new_etag, digests, resp)
        except requests.RequestException as exc:
            raise UpstreamError(f"cannot download {what}: {exc}") from exc

    def _write(self, release: Release, part: Path, offset: int, etag: str, digests: Digests, resp) -> Digests:
        sha, step = release.sha256, self.options.checkpoint_bytes
        written, durable = offset, offset
        try:
            with part.open("r+b") as fh:
                fh.seek(offset)
                fh.truncate()
                for block in resp.iter_content(CHUNK):
                    if written + len(block) > release.size:
                        self.blobs.drop_partial(sha)
                        raise IntegrityError(f"{release.url}: upstream sent more than the {release.size} bytes the manifest says; discarded")
                    fh.write(block)
                    digests.update(block)
                    written += len(block)
                    if written - durable >= step or written == release.size:
                        fh.flush()
                        os.fsync(fh.fileno())
                        durable = written
                        self.blobs.save_checkpoint(sha, Checkpoint(durable, etag, release.url))
                        with self._lock:
                            self._progress[sha] = durable
                        if self._on_progress:
                            self._on_progress(release, durable)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise QuotaError(
                    f"disk full while downloading {release.device_type} {release.version} ({exc.strerror}); "
                    f"{durable} bytes kept, the download resumes when space is freed"
                ) from exc
            raise
        return digests


def _range_start(resp: requests.Response) -> int | None:
    value = resp.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def get_manifest(url: str, options: FetchOptions) -> bytes | None:
    """The manifest document at `url`; None when upstream says there is none (HTTP 404)."""
    try:
        resp = requests.get(url, timeout=options.timeout_s, headers={"User-Agent": options.user_agent})
    except requests.RequestException as exc:
        raise UpstreamError(f"cannot reach the firmware upstream at {url}: {exc}") from exc
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise UpstreamError(f"the firmware upstream answered HTTP {resp.status_code} for {url}")
    return resp.content
