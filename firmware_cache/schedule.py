"""The periodic upstream check (apscheduler): one job, never two at once, missed runs coalesced."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


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
