"""Failed Celery tasks, recorded by ops/signals.py, to list, requeue or remove."""

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from opsportal.errors import Conflict, DomainError


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
        """Sends each task again with its original arguments, all or none (after commit)."""
        from celery import uuid

        from opsportal.celery import app

        with transaction.atomic():
            rows = cls._lock_waiting(ids)
            now = timezone.now()
            for row in rows:
                row.requeued_at, row.requeued_as, row.handled_by = now, uuid(), by
                row.save(update_fields=["requeued_at", "requeued_as", "handled_by"])

            def publish():
                for row in rows:
                    options = {"queue": row.queue} if row.queue else {}
                    app.send_task(row.name, args=row.args, kwargs=row.kwargs, task_id=row.requeued_as, **options)

            transaction.on_commit(publish)
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
