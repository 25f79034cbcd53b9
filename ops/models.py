"""What the ops actions leave behind: an audit trail, failed Celery tasks to requeue, the
maintenance switch, the retention runs and the dangerous actions asked for outside runbooks."""

import json

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from ops.choices import REQUEST_TRANSITIONS, RequestState
from opsportal.errors import Conflict, DomainError
from runbooks.choices import Safety


class AuditRecord(models.Model):
    """One change or dangerous action (or its dry run): who, when, on what, with what, and the result."""

    action = models.CharField(max_length=60)
    safety = models.CharField(max_length=10, choices=Safety.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who approved (dangerous) or confirmed (change) it, when someone had to.",
    )
    via = models.CharField(max_length=20, help_text="api, portal, runbook or schedule.")
    target = models.CharField(max_length=150, help_text="A service slug, or 'portal'.")
    params = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)
    ok = models.BooleanField(default=True)
    summary = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The ops console and the admin list the newest records first.
            models.Index(fields=["-created_at"], name="audit_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.target} at {self.created_at:%Y-%m-%d %H:%M}"


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


class MaintenanceSwitch(models.Model):
    """The one row that says whether the portal is in maintenance: the database is the truth, the
    cache only a copy (opsportal/maintenance.py), so a cache flush never turns maintenance off."""

    enabled = models.BooleanField(default=False)
    message = models.CharField(max_length=300, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A single switch for the whole portal.
            models.CheckConstraint(condition=Q(pk=1), name="maintenance_switch_singleton"),
        ]

    def __str__(self) -> str:
        return "Maintenance on" if self.enabled else "Maintenance off"

    @classmethod
    def current(cls) -> "MaintenanceSwitch":
        return cls.objects.filter(pk=1).first() or cls(pk=1)

    @classmethod
    def set(cls, enabled: bool, *, by=None, message: str = "") -> tuple["MaintenanceSwitch", bool]:
        """Turns maintenance on or off; returns the switch and whether it changed (setting it twice is fine)."""
        from opsportal import maintenance

        with transaction.atomic():
            switch, _ = cls.objects.select_for_update().get_or_create(pk=1)
            if switch.enabled == enabled:
                transaction.on_commit(lambda: maintenance.remember(enabled))
                return switch, False
            switch.enabled, switch.message = enabled, message[:300]
            switch.changed_by, switch.changed_at = by, timezone.now()
            switch.save()
            transaction.on_commit(lambda: maintenance.remember(enabled))
        return switch, True


class RetentionRun(models.Model):
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(default=0)
    retention_days = models.PositiveIntegerField()
    dry_run = models.BooleanField(default=False)
    counts = models.JSONField(default=dict, blank=True, help_text="Rows deleted (or, dry, that would be) per kind.")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Retention run {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ActionRequestQuerySet(models.QuerySet):
    def expire_stale(self) -> int:
        """Pending requests nobody decided on in time expire (the state they were asked for has moved on)."""
        return self.filter(state=RequestState.PENDING, expires_at__lte=timezone.now()).update(
            state=RequestState.EXPIRED, decided_at=timezone.now()
        )


class ActionRequest(models.Model):
    """A dangerous ops action asked for outside a runbook (ops API or console). It runs only after a
    second admin approves it, on a worker, exactly once; the requester can withdraw it, anyone else
    can reject it, and it expires when nobody decides in time. The dry run taken when it was asked
    for is kept: it is what the approver saw (terminate_long_queries ends exactly the queries listed there)."""

    action = models.CharField(max_length=60)
    params = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500)
    via = models.CharField(max_length=20, default="api", help_text="api or portal: where it was asked for.")
    service = models.ForeignKey(
        "incidents.Service",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The service acted on (its broker, Redis or database URL); empty: the portal itself.",
    )
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=RequestState.choices, default=RequestState.PENDING)
    preview = models.JSONField(default=dict, blank=True, help_text="The dry run taken when it was asked for.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)

    objects = ActionRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            # The console and GET /api/ops/requests?state=pending list the open ones first.
            models.Index(fields=["state", "-requested_at"], name="actionrequest_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} requested by {self.requested_by} ({self.get_state_display()})"

    @property
    def waiting_message(self) -> str:
        return f"Request #{self.pk} waits for another admin's approval. {self.preview.get('summary', '')}".strip()

    @property
    def params_text(self) -> str:
        return json.dumps(self.params, sort_keys=True)

    @property
    def label(self) -> str:
        target = f" on {self.service.slug}" if self.service_id else ""
        return f"Dangerous ops action `{self.action}`{target} (request #{self.pk})"

    def move(self, state: str) -> None:
        if state not in REQUEST_TRANSITIONS[self.state]:
            raise Conflict(f"This request is {self.get_state_display().lower()}; it cannot become {state}.")
        self.state = state

    def event(self, text: str, *, by=None) -> None:
        """A timeline entry on the incident the request was made for (none without one)."""
        if self.incident_id is None:
            return
        from incidents.choices import EventKind
        from incidents.models import TimelineEvent

        TimelineEvent.record(self.incident, kind=EventKind.ACTION, body=text, author=by)

    @classmethod
    def locked(cls, pk: int) -> "ActionRequest":
        row = cls.objects.select_for_update().filter(pk=pk).first()
        if row is None:
            raise DomainError(f"No action request with id {pk}.")
        return row

    # --- verbs ----------------------------------------------------------------------------

    def _lock_pending(self) -> "ActionRequest":
        type(self).objects.filter(pk=self.pk).expire_stale()
        locked = type(self).locked(self.pk)
        if locked.state == RequestState.EXPIRED:
            raise Conflict(
                f"Request #{self.pk} expired at {timezone.localtime(locked.expires_at):%Y-%m-%d %H:%M %Z} "
                "without a decision; what its dry run showed may have changed. Ask again."
            )
        if locked.state != RequestState.PENDING:
            who = f" by {username_of(locked.decided_by)}" if locked.decided_by_id else ""
            raise Conflict(f"Request #{self.pk} is already {locked.get_state_display().lower()}{who}.")
        return locked

    def _decide(self, state: str, *, by, note: str, outcome: str) -> None:
        """On the locked row: records who decided what, and says so on the incident's timeline."""
        self.move(state)
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note.strip()[:500]
        self.save()
        quote = f": {self.decision_note}" if self.decision_note else ""
        self.event(f"{self.label} {outcome} by {username_of(by)}{quote}; {self._next_words(state)}", by=by)

    @staticmethod
    def _next_words(state: str) -> str:
        return "running it now." if state == RequestState.APPROVED else "it will not run."

    def approve(self, *, by, note: str = "") -> "ActionRequest":
        """A second admin says yes: a worker runs it (queued after commit)."""
        from ops.tasks import queue_request

        with transaction.atomic():
            locked = self._lock_pending()
            if locked.requested_by_id == by.pk:
                raise PermissionDenied(
                    f"You asked for request #{self.pk}, so you cannot approve it: another admin has to. "
                    "You can withdraw it (reject)."
                )
            locked._decide(RequestState.APPROVED, by=by, note=note, outcome="approved")
            transaction.on_commit(lambda: queue_request(locked.pk))
        return locked

    def reject(self, *, by, note: str = "") -> "ActionRequest":
        """Someone else says no (rejected), or the requester withdraws it (cancelled). Nothing runs."""
        with transaction.atomic():
            locked = self._lock_pending()
            if locked.requested_by_id == by.pk:
                locked._decide(RequestState.CANCELLED, by=by, note=note, outcome="withdrawn")
            else:
                locked._decide(RequestState.REJECTED, by=by, note=note, outcome="rejected")
        return locked

    @classmethod
    def start(cls, pk: int) -> "ActionRequest | None":
        """The worker takes an approved request, once: a redelivered message finds it running already."""
        with transaction.atomic():
            locked = cls.objects.select_for_update().filter(pk=pk).first()
            if locked is None or locked.state != RequestState.APPROVED:
                return None
            locked.move(RequestState.RUNNING)
            locked.started_at = timezone.now()
            locked.save(update_fields=["state", "started_at"])
        return locked

    def finish(self, state: str, summary: str, result: dict) -> "ActionRequest":
        """Records the outcome of a running request (succeeded or failed)."""
        with transaction.atomic():
            locked = type(self).locked(self.pk)
            locked.move(state)
            locked.summary, locked.result, locked.finished_at = summary[:500], result, timezone.now()
            locked.save(update_fields=["state", "summary", "result", "finished_at"])
        return locked


def username_of(user) -> str:
    return user.get_username() if user else "Ops Portal"
