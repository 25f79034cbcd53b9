"""Failed Celery tasks, recorded by ops/signals.py, to list, requeue or remove."""

import logging

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from opsportal import broker
from opsportal.errors import Conflict, DomainError, Transient

logger = logging.getLogger(__name__)


class FailedTaskQuerySet(models.QuerySet):
    def waiting(self):
        return self.filter(requeued_at__isnull=True, removed_at__isnull=True)


class FailedTask(models.Model):
    """A Celery task that raised (recorded by the task_failure signal), until it is requeued or removed."""

    task_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100, blank=True)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    exception = models.CharField(max_length=500)
    traceback = models.TextField(blank=True)
    failed_at = models.DateTimeField(default=timezone.now)
    requeued_at = models.DateTimeField(null=True, blank=True)
    requeued_as = models.CharField(max_length=64, blank=True, help_text="The task id of the new attempt.")
    removed_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = FailedTaskQuerySet.as_manager()

    class Meta:
        ordering = ["-failed_at", "-id"]
        indexes = [
            # GET /api/ops/tasks?status=failed: the failed tasks nobody has handled yet, newest first.
            models.Index(
                fields=["-failed_at"],
                name="failedtask_waiting_idx",
                condition=Q(requeued_at__isnull=True, removed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.task_id}]"

    @property
    def reason(self) -> str:
        return self.exception

    @classmethod
    def _lock_waiting(cls, ids: list[int]) -> list["FailedTask"]:
        if not ids:
            raise DomainError("Give the ids of the failed tasks (a non-empty list).")
        rows = list(cls.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        missing = sorted(set(ids) - {r.pk for r in rows})
        if missing:
            raise DomainError(f"No failed task with id {', '.join(map(str, missing))}.")
        handled = [r.pk for r in rows if r.requeued_at or r.removed_at]
        if handled:
            raise Conflict(f"Already requeued or removed: {', '.join(map(str, handled))}; nothing was changed.")
        return rows

    @classmethod
    def requeue(cls, ids: list[int], *, by=None) -> list["FailedTask"]:
        """Sends each task again with its original arguments, all or none, with the bounded publish
        (this runs in requests: the console, the ops API, the admin).

        Each message is published while the rows are locked, and a row is marked requeued only once
        its message is on the broker. When the broker does not answer, Transient (503) says so and
        the rows not sent stay waiting, to requeue again: nothing is marked requeued that was not
        queued. Publishing before the commit is safe here: the task reads its own arguments, never
        this row; a commit that fails after the publish leaves a sent task listed as waiting, so at
        worst it runs twice, never zero times."""
        from celery import uuid

        from opsportal.celery import app

        with transaction.atomic():
            rows = cls._lock_waiting(ids)
            now = timezone.now()
            sent: list[FailedTask] = []
            error = None
            for row in rows:
                task_id = uuid()
                options = {"queue": row.queue} if row.queue else {}
                try:
                    broker.send(app, row.name, row.args, row.kwargs, task_id=task_id, **options)
                except Exception as exc:  # noqa: BLE001 - kombu/redis/amqp raise many kinds; all mean "not queued"
                    error = exc
                    break
                row.requeued_at, row.requeued_as, row.handled_by = now, task_id, by
                row.save(update_fields=["requeued_at", "requeued_as", "handled_by"])
                sent.append(row)
        if error is not None:
            left = ", ".join(str(r.pk) for r in rows[len(sent) :])
            done = f"requeued {', '.join(str(r.pk) for r in sent)}; " if sent else "nothing was requeued; "
            logger.warning("failed task(s) %s not requeued (%s: %s)", left, type(error).__name__, error)
            raise Transient(
                f"The broker did not answer ({type(error).__name__}): {done}failed task(s) {left} still "
                "waiting; requeue them once it answers."
            )
        return rows

    @classmethod
    def remove(cls, ids: list[int], *, by=None) -> list["FailedTask"]:
        """Gives up on the tasks: they stay listed as removed, and are never requeued."""
        with transaction.atomic():
            rows = cls._lock_waiting(ids)
            now = timezone.now()
            for row in rows:
                row.removed_at, row.handled_by = now, by
                row.save(update_fields=["removed_at", "handled_by"])
        return rows
