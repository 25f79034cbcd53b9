"""Problem reports: what the public tells us from the status page, until staff triage it.

A report is either turned into an incident (a new one, or attached to one already open; the
incident's timeline records it) or dismissed, once. The reporter's name and e-mail are personal
data: they stay on the report row only (never on the timeline, which every role reads, nor in
webhooks), only responders and admins see them (`may_see_reporter`), logs redact them, and the
retention sweep (ops/retention.py) blanks them RETENTION_DAYS after the report arrived.
"""

import logging

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinLengthValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.choices import REPORT_TRANSITIONS, EventKind, ReportStatus, Severity
from incidents.notifications.registry import register_event
from opsportal import metrics
from opsportal.errors import DomainError, InvalidTransition
from opsportal.roles import is_responder

logger = logging.getLogger("incidents.reports")

REPORT_DESCRIPTION_MAX = 5000
# A report is a few kilobytes of text; a request body much larger than that is not one.
REPORT_MAX_BODY_BYTES = 32 * 1024
# Announced to subscribed webhooks when a report arrives, without the reporter's name or e-mail.
REPORT_RECEIVED = register_event("report.received", "Problem report received")


def record_received(report: "ProblemReport") -> None:
    service = report.service.slug if report.service else None
    logger.info(
        "problem report received", extra={"event": "report.received", "report_id": report.pk, "service": service}
    )


def record_rejected(reason: str) -> None:
    """reason: invalid, honeypot, too_large or unavailable (the throttle's cache is down)."""
    metrics.public_leads_rejected_total.labels(reason=reason).inc()
    logger.info("problem report rejected", extra={"event": "report.rejected", "reason": reason})


def record_throttled(wait: float) -> None:
    metrics.public_leads_throttled_total.inc()
    logger.warning("problem report throttled", extra={"event": "report.throttled", "wait": round(wait or 0, 1)})


def body_too_large(request) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > REPORT_MAX_BODY_BYTES
    except ValueError:
        return True


class ProblemReportQuerySet(models.QuerySet):
    def new(self):
        return self.filter(status=ReportStatus.NEW)

    def for_list(self):
        return self.select_related("service", "incident", "triaged_by")


def may_see_reporter(user) -> bool:
    """Who may read a reporter's name and e-mail: responders and admins (they reply); viewers read
    the report without them."""
    return is_responder(user)


class ProblemReport(models.Model):
    # Blank once the retention sweep has removed them (the public form and API require both).
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    service = models.ForeignKey(
        "incidents.Service",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="problem_reports",
        help_text="Empty when the reporter did not know which service.",
    )
    description = models.TextField(
        validators=[MinLengthValidator(10), MaxLengthValidator(REPORT_DESCRIPTION_MAX)],
    )
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.NEW)
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="problem_reports"
    )
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    triaged_at = models.DateTimeField(null=True, blank=True)
    dismiss_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ProblemReportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The triage list's default view: reports still to triage, newest first.
            models.Index(fields=["-created_at"], name="report_new_idx", condition=Q(status=ReportStatus.NEW)),
            # The triage list filtered by status (escalated, dismissed).
            models.Index(fields=["status", "-created_at"], name="report_status_idx"),
        ]

    def __str__(self) -> str:
        return f"Report #{self.pk} ({self.get_status_display()})"

    @property
    def reference(self) -> str:
        return f"RPT-{self.pk}"

    # --- verbs ----------------------------------------------------------------------------

    @classmethod
    def submit(cls, *, name: str, email: str, description: str, service=None) -> "ProblemReport":
        from incidents.alerting.notify import notify_report_received

        report = cls(name=name.strip(), email=email.strip(), description=description.strip(), service=service)
        report.full_clean()
        with transaction.atomic():
            report.save()
            notify_report_received(report)  # webhooks subscribed to report.received, sent after commit
        return report

    def _lock_new(self, to: str) -> "ProblemReport":
        locked = type(self).objects.select_for_update().get(pk=self.pk)
        if to not in REPORT_TRANSITIONS[locked.status]:
            raise InvalidTransition(f"{locked.reference} was already triaged: {locked.get_status_display().lower()}.")
        return locked

    def escalate(self, *, by, incident=None, title: str = "", severity: str = Severity.SEV3):
        """Turn the report into a new incident, or attach it to the open `incident`; returns the incident."""
        from incidents.models import Incident, TimelineEvent

        with transaction.atomic():
            locked = self._lock_new(ReportStatus.ESCALATED)
            if incident is None:
                title = title.strip() or f"Problem report: {_first_line(locked.description)}"
                incident = Incident.declare(
                    by=by,
                    title=title[:200],
                    severity=severity,
                    summary=locked.description,
                    services=[locked.service] if locked.service else (),
                )
            else:
                incident = Incident.objects.select_for_update().get(pk=incident.pk)
                if not incident.is_open:
                    raise DomainError(f"{incident.reference} is {incident.status}; attach reports to open incidents.")
                if locked.service and not incident.services.filter(pk=locked.service.pk).exists():
                    incident.services.add(locked.service)
            service = f" about **{locked.service.name}**" if locked.service else ""
            quoted = "\n".join(f"> {line}" for line in locked.description.splitlines())
            TimelineEvent.record(
                incident,
                kind=EventKind.ALERT,
                author=by,
                body=f"Problem report {locked.reference} from the status page{service}, "
                f"received at {locked.created_at:%Y-%m-%d %H:%M} UTC:\n\n{quoted}",
            )
            locked.status = ReportStatus.ESCALATED
            locked.incident = incident
            locked.triaged_by = by
            locked.triaged_at = timezone.now()
            locked.save()
        self.refresh_from_db()
        return incident

    def dismiss(self, *, by, reason: str = "") -> "ProblemReport":
        with transaction.atomic():
            locked = self._lock_new(ReportStatus.DISMISSED)
            locked.status = ReportStatus.DISMISSED
            locked.dismiss_reason = reason.strip()[:500]
            locked.triaged_by = by
            locked.triaged_at = timezone.now()
            locked.save()
        self.refresh_from_db()
        return self


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no description"
    return line if len(line) <= 80 else line[:79] + "…"
