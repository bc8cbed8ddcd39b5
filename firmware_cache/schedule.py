"""The periodic upstream check (apscheduler): one job, never two at once, missed runs coalesced;
and the backoff after failed downloads.

A release whose image failed verification (`rejected`) is fetched again only by this check, and
not before its backoff ran out: 15 min after the first failure, doubling to at most a day. A
download that broke off (`failed`: upstream away, disk full) may be retried sooner, also when a
device asks for it: 1 min, doubling to at most an hour. A person's `hearth firmware check`
retries at once."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

REJECTED_BACKOFF_S = (15 * 60, 24 * 3600)      # (first, longest)
FAILED_BACKOFF_S = (60, 3600)


def retry_delay_s(failures: int, rejected: bool) -> float:
    """Seconds to wait after the `failures`-th failure in a row."""
    first, longest = REJECTED_BACKOFF_S if rejected else FAILED_BACKOFF_S
    return float(min(longest, first * 2 ** max(0, min(failures, 32) - 1)))


class CheckSchedule:
    def __init__(self, check: Callable[[], object], interval_min: int, first_delay_s: float = 30.0):
        self._check = check
        self.interval_min = interval_min
        self.first_delay_s = first_delay_s
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        if self.interval_min <= 0 or self._scheduler is not None:
            return
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            self._run, "interval", minutes=self.interval_min, id="firmware-check",
            next_run_time=dt.datetime.now() + dt.timedelta(seconds=self.first_delay_s),
            coalesce=True, max_instances=1, misfire_grace_time=None,
        )
        self._scheduler.start()

    def _run(self) -> None:
        try:
            self._check()
        except Exception:  # the scheduler thread must survive; the error is also in status()
            log.exception("scheduled firmware check failed")

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
