"""The beat scheduler: django-celery-beat's DatabaseScheduler, riding out database outages.

The upstream scheduler re-reads every periodic task from the database when the schedule changed
and, unconditionally, every 300 s; that read is not guarded, so an outage that overlaps it raises
OperationalError out of `tick()` and beat exits ("beat raised exception"), taking the reaper,
the delivery sweep, escalations and webhook retries with it. This one:

- keeps the last schedule it read and goes on sending from it while the database is down
  (the tasks it sends meet the outage in the worker and are retried or swept later);
- closes the broken connections and tries the database again after a back-off (1 s, doubled up
  to BEAT_DB_RETRY_MAX seconds), without logging a traceback every tick;
- re-reads the whole schedule as soon as the database answers again, writes back the run
  bookkeeping (last run, run count) it could not write during the outage, and sends at once the
  entries named in BEAT_RUN_AFTER_OUTAGE (the sweeps that pick up what the outage left);
- starts even when the database is down (an empty schedule until it answers).

The full re-read interval is BEAT_RESYNC_SECONDS (300 s, as upstream).
"""

import logging
import time
from contextlib import suppress
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, InterfaceError, close_old_connections, connections, transaction
from django_celery_beat import schedulers

logger = logging.getLogger("opsportal.beat")
DB_ERRORS = (DatabaseError, InterfaceError)


class DatabaseScheduler(schedulers.DatabaseScheduler):
    _next_full_read = 0.0  # time.monotonic() of the next unconditional re-read
    _retry_at = 0.0  # while the database is down: no database call before this
    _backoff = 0.0  # seconds; 0 while the database answers
    _outage_started = None

    @property
    def schedule(self) -> dict:
        if self._backoff and time.monotonic() < self._retry_at:
            return self._known()
        try:
            schedule = self._read()
        except DB_ERRORS as exc:
            self._database_down(exc)
            return self._known()
        if self._backoff:
            logger.warning(
                "beat: the database answers again after %.0f s; schedule re-read",
                time.monotonic() - self._outage_started,
            )
            self._backoff, self._outage_started = 0.0, None
            self._due_now(settings.BEAT_RUN_AFTER_OUTAGE)
        return schedule

    def _due_now(self, names) -> None:
        """Makes the named entries due at once (the sweeps that pick up what an outage left)."""
        for name in names:
            entry = self._schedule.get(name)
            if entry is not None:
                entry.last_run_at = entry.default_now() - timedelta(days=366)

    def _known(self) -> dict:
        if self._schedule is None:
            self._schedule = {}  # started during an outage: nothing to send until the database answers
            self._initial_read = True
        return self._schedule

    def _read(self) -> dict:
        """The upstream property's logic, raising database errors instead of dying on them."""
        now = time.monotonic()
        initial = self._schedule is None or self._initial_read or bool(self._backoff)
        if initial or now >= self._next_full_read or self._changed():
            self._write_dirty()
            self._last_timestamp = self.Changes.last_change()
            self._schedule = self.all_as_schedule()
            self._initial_read = False
            self._next_full_read = now + settings.BEAT_RESYNC_SECONDS
            self._heap = []  # the entries changed: Scheduler.tick rebuilds its heap
            self._heap_invalidated = True
        return self._schedule

    def _changed(self) -> bool:
        close_old_connections()
        with suppress(transaction.TransactionManagementError):
            transaction.commit()  # see upstream: a REPEATABLE READ snapshot would hide changes
        last, self._last_timestamp = self._last_timestamp, self.Changes.last_change()
        return bool(self._last_timestamp and last and self._last_timestamp > last)

    def _write_dirty(self) -> None:
        """Write back the bookkeeping of the entries that ran; a name stays dirty until it is written."""
        close_old_connections()
        for name in list(self._dirty):
            entry = (self._schedule or {}).get(name)
            if entry is not None:
                with suppress(ObjectDoesNotExist):  # deleted in the admin meanwhile
                    entry.save()
            self._dirty.discard(name)

    def sync(self) -> None:
        if self._backoff and time.monotonic() < self._retry_at:
            return  # the database is down: the dirty names wait for it
        try:
            self._write_dirty()
        except DB_ERRORS as exc:
            self._database_down(exc)

    def _database_down(self, exc: Exception) -> None:
        now = time.monotonic()
        if not self._backoff:
            self._outage_started = now
            logger.error("beat: database unavailable, sending from the last schedule read: %s", exc)
        else:
            logger.info("beat: database still unavailable: %s", exc)
        self._backoff = min(max(self._backoff * 2, 1.0), settings.BEAT_DB_RETRY_MAX)
        self._retry_at = now + self._backoff
        for connection in connections.all(initialized_only=True):
            with suppress(Exception):  # a broken connection may fail to close: it is gone either way
                connection.close()
