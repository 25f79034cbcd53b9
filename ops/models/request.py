"""Dangerous actions asked for outside runbooks, waiting for a second admin."""

import json

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from ops.choices import REQUEST_TRANSITIONS, RequestState
from opsportal.errors import Conflict, DomainError, NotAllowed


class ActionRequestQuerySet(models.QuerySet):
    def expire_stale(self) -> int:
        """Pending requests nobody decided on in time expire (the state they were asked for has moved on)."""
        return self.filter(state=RequestState.PENDING, expires_at__lte=timezone.now()).update(
            state=RequestState.EXPIRED, decided_at=timezone.now()
        )


NOT_QUEUED = "the broker did not answer; the sweep sends it to a worker once the broker answers."


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
    # Set by approve(): whether the broker took the message (None: not approved by this process).
    queued: bool | None = None

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
        """A second admin says yes: a worker runs it (queued after commit; `queued` on the returned
        row says whether the broker took it)."""
        with transaction.atomic():
            locked = self._lock_pending()
            if locked.requested_by_id == by.pk:
                raise NotAllowed(
                    f"You asked for request #{self.pk}, so you cannot approve it: another admin has to. "
                    "You can withdraw it (reject)."
                )
            locked._decide(RequestState.APPROVED, by=by, note=note, outcome="approved")
            # robust: the approval is committed; a failure to note the wait is logged, not a 500.
            transaction.on_commit(locked._queue, robust=True)
        return locked

    def _queue(self) -> None:
        """After the approval commits. When the broker does not answer, the approval stands: the sweep
        (ops.approvals.sweep) sends it to a worker once the broker answers, and the incident's
        timeline says why it has not started."""
        from ops.tasks import queue_request

        self.queued = queue_request(self.pk)
        if not self.queued:
            self.event(f"{self.label} is approved but not queued yet: {NOT_QUEUED}")

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
