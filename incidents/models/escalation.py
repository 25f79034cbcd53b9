"""Response clocks: a policy per severity, contacts per escalation level, and one clock per incident.

A clock starts when an incident is declared (by a person or an alert): acknowledge by
`ack_due_at`, resolve by `resolve_due_at`, and while nobody has acknowledged, move one level up
(L1 → L2 → L3) every `escalate_after_minutes`. The sweep in incidents/tasks.py calls the verbs
below; each escalation and each breach is a timeline event, a metric and a notification.
Acknowledging (any move out of `triggered`) stops the acknowledgement clock and escalation;
resolving stops them all.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.choices import OPEN_STATUSES, EscalationLevel, EventKind, Severity, Status
from incidents.models.incident import Incident, TimelineEvent


class EscalationPolicy(models.Model):
    severity = models.CharField(max_length=4, choices=Severity.choices, unique=True)
    ack_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1)], help_text="Acknowledge within this many minutes."
    )
    resolve_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="Resolve within this many minutes."
    )
    escalate_after_minutes = models.PositiveIntegerField(
        default=30,
        help_text="Without acknowledgement, move to the next level after this many minutes (0: never escalate).",
    )
    max_level = models.PositiveSmallIntegerField(
        choices=EscalationLevel.choices,
        default=EscalationLevel.L3,
        validators=[MinValueValidator(1), MaxValueValidator(3)],
        help_text="The highest level this severity escalates to.",
    )
    enabled = models.BooleanField(default=True, help_text="Off: incidents of this severity get no clocks.")

    class Meta:
        ordering = ["severity"]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return f"{self.severity}: ack {self.ack_minutes}m, resolve {self.resolve_minutes}m"


class EscalationContact(models.Model):
    """Who is paged when an incident reaches a level: whoever a schedule puts on call when the level
    fires, a user, an email address or a webhook endpoint."""

    level = models.PositiveSmallIntegerField(choices=EscalationLevel.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    email = models.EmailField(blank=True)
    endpoint = models.ForeignKey(
        "incidents.WebhookEndpoint", null=True, blank=True, on_delete=models.CASCADE, related_name="contacts"
    )
    schedule = models.ForeignKey(
        "incidents.Schedule", null=True, blank=True, on_delete=models.CASCADE, related_name="contacts"
    )
    note = models.CharField(max_length=200, blank=True, help_text="E.g. 'backend lead' or 'DBA on call'.")

    class Meta:
        ordering = ["level", "id"]
        constraints = [
            # Exactly one way to reach each contact.
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, email="", endpoint__isnull=True, schedule__isnull=True)
                    | Q(user__isnull=True, endpoint__isnull=True, schedule__isnull=True) & ~Q(email="")
                    | Q(user__isnull=True, email="", endpoint__isnull=False, schedule__isnull=True)
                    | Q(user__isnull=True, email="", endpoint__isnull=True, schedule__isnull=False)
                ),
                name="contact_exactly_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"L{self.level}: {self.target}"

    @property
    def target(self) -> str:
        if self.user_id:
            return self.user.get_username()
        if self.endpoint_id:
            return f"webhook {self.endpoint.name}"
        if self.schedule_id:
            return f"schedule {self.schedule.name}"
        return self.email

    def clean(self) -> None:
        if sum([bool(self.user_id), bool(self.email), bool(self.endpoint_id), bool(self.schedule_id)]) != 1:
            raise ValidationError("Give exactly one of: a schedule, a user, an email address or a webhook endpoint.")


class SlaClockQuerySet(models.QuerySet):
    def due_escalation(self, now: datetime):
        return self.filter(next_escalation_at__lte=now, incident__status=Status.TRIGGERED)

    def due_ack_breach(self, now: datetime):
        return self.filter(ack_due_at__lte=now, ack_breached_at__isnull=True, incident__status=Status.TRIGGERED)

    def due_resolve_breach(self, now: datetime):
        return self.filter(
            resolve_due_at__lte=now, resolve_breached_at__isnull=True, incident__status__in=OPEN_STATUSES
        )


class SlaClock(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="sla", primary_key=True)
    policy = models.ForeignKey(EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField()
    ack_due_at = models.DateTimeField(null=True, blank=True)
    resolve_due_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(
        null=True, blank=True, help_text="When the incident first left 'triggered' (the acknowledgement clock stopped)."
    )
    ack_breached_at = models.DateTimeField(null=True, blank=True)
    resolve_breached_at = models.DateTimeField(null=True, blank=True)
    level = models.PositiveSmallIntegerField(choices=EscalationLevel.choices, default=EscalationLevel.L1)
    escalated_at = models.DateTimeField(null=True, blank=True)
    next_escalation_at = models.DateTimeField(null=True, blank=True)

    objects = SlaClockQuerySet.as_manager()

    class Meta:
        verbose_name = "SLA clock"
        verbose_name_plural = "SLA clocks"
        indexes = [
            # The escalation sweep: clocks whose next level is due.
            models.Index(
                fields=["next_escalation_at"],
                name="slaclock_escalation_idx",
                condition=Q(next_escalation_at__isnull=False),
            ),
            # The breach sweep: acknowledgement deadlines not yet breached.
            models.Index(fields=["ack_due_at"], name="slaclock_ack_idx", condition=Q(ack_breached_at__isnull=True)),
            # The breach sweep: resolution deadlines not yet breached.
            models.Index(
                fields=["resolve_due_at"], name="slaclock_resolve_idx", condition=Q(resolve_breached_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"clock of {self.incident.reference}"

    # --- reading --------------------------------------------------------------------------

    def state(self, now: datetime | None = None) -> dict:
        """The clocks as the incident page and the dashboard show them."""
        now = now or timezone.now()
        incident = self.incident
        resolved_at = incident.resolved_at or incident.closed_at
        ack = _clock(self.ack_due_at, self.acknowledged_at, now)
        if ack and self.acknowledged_at is None and incident.status != Status.TRIGGERED:
            ack = {"due": self.ack_due_at, "stopped": None, "state": "skipped"}  # moved on by the alerts alone
        return {
            "ack": ack,
            "resolve": _clock(self.resolve_due_at, resolved_at if not incident.is_open else None, now),
            "level": self.level,
            "level_label": EscalationLevel(self.level).label,
            "next_escalation_at": self.next_escalation_at if incident.status == Status.TRIGGERED else None,
        }

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def start(cls, incident: Incident) -> "SlaClock | None":
        """Start the clocks of a new incident from its severity's policy (none if the policy is off)."""
        policy = EscalationPolicy.objects.filter(severity=incident.severity, enabled=True).first()
        if policy is None:
            return None
        clock = cls(incident=incident, started_at=incident.detected_at)
        clock._apply(policy)
        clock.save()
        return clock

    def _apply(self, policy: EscalationPolicy | None) -> None:
        self.policy = policy
        if policy is None:
            self.ack_due_at = self.resolve_due_at = self.next_escalation_at = None
            return
        if self.ack_breached_at is None:
            self.ack_due_at = self.started_at + timedelta(minutes=policy.ack_minutes)
        if self.resolve_breached_at is None:
            self.resolve_due_at = self.started_at + timedelta(minutes=policy.resolve_minutes)
        if policy.escalate_after_minutes and self.level < policy.max_level and self.acknowledged_at is None:
            base = self.escalated_at or self.started_at
            self.next_escalation_at = base + timedelta(minutes=policy.escalate_after_minutes)
        else:
            self.next_escalation_at = None

    def _lock(self) -> tuple[Incident, "SlaClock"]:
        # Incident first, then clock: the order transition_to (and its receivers) lock them in.
        incident = Incident.objects.select_for_update().get(pk=self.pk)
        locked = type(self).objects.select_for_update(of=("self",)).select_related("policy").get(pk=self.pk)
        locked.incident = incident
        return incident, locked

    def severity_changed(self, severity: str) -> None:
        """A new severity brings its own policy; deadlines already breached stay breached."""
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            locked._apply(EscalationPolicy.objects.filter(severity=severity, enabled=True).first())
            locked.save()

    def stop_acknowledgement(self, at: datetime, *, by) -> None:
        """The incident left 'triggered': no more escalation. Only a person's move counts as the
        acknowledgement (MTTA); the alerts resolving by themselves (by=None) do not."""
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            if locked.acknowledged_at is not None:
                return
            if by is not None:
                locked.acknowledged_at = at
            locked.next_escalation_at = None
            locked.save(update_fields=["acknowledged_at", "next_escalation_at"])

    def escalate(self, now: datetime) -> bool:
        """Move one level up if still unacknowledged and due; False when the state moved on."""
        from incidents import metrics
        from incidents.alerting.notify import notify_escalated

        with transaction.atomic():
            incident, locked = self._lock()
            due = locked.next_escalation_at is not None and locked.next_escalation_at <= now
            if not due or incident.status != Status.TRIGGERED or locked.acknowledged_at is not None:
                return False
            policy = locked.policy
            previous = locked.level
            locked.level = previous + 1
            locked.escalated_at = now
            if policy and policy.escalate_after_minutes and locked.level < policy.max_level:
                locked.next_escalation_at = now + timedelta(minutes=policy.escalate_after_minutes)
            else:
                locked.next_escalation_at = None
            locked.save()
            waited = int((now - locked.started_at).total_seconds() // 60)
            level = EscalationLevel(locked.level)
            event = TimelineEvent.record(
                incident,
                kind=EventKind.ESCALATION,
                body=f"Escalated to **{level.label}**: not acknowledged after {waited} min (was L{previous}).",
                occurred_at=now,
            )
            notify_escalated(incident, level=locked.level, source_event=event)
            metrics.escalations_total.labels(level=f"L{locked.level}").inc()
        return True

    def record_breach(self, kind: str, now: datetime) -> bool:
        """Write the breach of the acknowledgement or resolution deadline once."""
        from incidents import metrics

        field, due_field = {
            "ack": ("ack_breached_at", "ack_due_at"),
            "resolve": ("resolve_breached_at", "resolve_due_at"),
        }[kind]
        with transaction.atomic():
            incident, locked = self._lock()
            due = getattr(locked, due_field)
            if getattr(locked, field) is not None or due is None or due > now:
                return False
            if kind == "ack" and (incident.status != Status.TRIGGERED or locked.acknowledged_at is not None):
                return False
            if kind == "resolve" and not incident.is_open:
                return False
            setattr(locked, field, now)
            locked.save(update_fields=[field])
            minutes = locked.policy.ack_minutes if kind == "ack" and locked.policy else None
            if kind == "resolve" and locked.policy:
                minutes = locked.policy.resolve_minutes
            what = "acknowledged" if kind == "ack" else "resolved"
            limit = f" within {minutes} min" if minutes else " in time"
            TimelineEvent.record(
                incident,
                kind=EventKind.ESCALATION,
                body=f"SLA breached: not {what}{limit} (due {timezone.localtime(due):%H:%M %Z}).",
                occurred_at=now,
            )
            metrics.sla_breaches_total.labels(kind=kind).inc()
        return True


def _clock(due: datetime | None, stopped: datetime | None, now: datetime) -> dict | None:
    if due is None:
        return None
    if stopped is not None:
        return {"due": due, "stopped": stopped, "state": "met" if stopped <= due else "late"}
    remaining = (due - now).total_seconds()
    return {"due": due, "stopped": None, "state": "running" if remaining > 0 else "breached", "seconds": int(remaining)}
