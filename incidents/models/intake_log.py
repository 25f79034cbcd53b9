"""The intake's answers that are not a new AlertDelivery: duplicates and refusals.

Accepted payloads are their AlertDelivery rows. A duplicate (Alertmanager retries, HA pairs) and
a refusal (bad JSON, wrong shape, too large) are one small row each, written only once the URL's
token named the integration (an unknown token belongs to nobody), and capped: each integration
keeps its latest `INTAKE_LOG_KEEP` rows of each outcome, so a sender hammering bad payloads
costs a bounded table, never unbounded storage.
"""

from django.conf import settings
from django.db import models

from incidents.choices import IntakeOutcome
from incidents.models.alerts import AlertDelivery, Integration

BODY_EXCERPT_BYTES = 4096
REASON_MAX_LENGTH = 1000


class IntakeEventQuerySet(models.QuerySet):
    def recent(self, integration: Integration, limit: int):
        return self.filter(integration=integration).select_related("delivery").order_by("-id")[:limit]


class IntakeEvent(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="intake_events")
    outcome = models.CharField(max_length=16, choices=IntakeOutcome.choices)
    received_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)
    body_excerpt = models.TextField(blank=True, help_text=f"The first {BODY_EXCERPT_BYTES} bytes of a refused body.")
    body_size = models.PositiveIntegerField(default=0)
    # No database constraint and nothing done on delete: the retention sweep deletes payloads in
    # bulk, and a SET_NULL here would make Django load each payload to do it. A duplicate whose
    # payload is gone shows without it (a nullable select_related is an outer join).
    delivery = models.ForeignKey(
        AlertDelivery,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="The stored payload a duplicate repeated.",
    )

    objects = IntakeEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The integration page's recent log, and pruning each outcome down to its cap.
            models.Index(fields=["integration", "outcome", "-id"], name="intakeevent_outcome_idx"),
            models.Index(fields=["integration", "-id"], name="intakeevent_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} {self.status_code} at {self.received_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, integration: Integration, outcome: str, **fields) -> "IntakeEvent":
        """Keep one answer, then drop this integration's rows of this outcome past the cap."""
        fields["reason"] = fields.get("reason", "")[:REASON_MAX_LENGTH]
        event = cls.objects.create(integration=integration, outcome=outcome, **fields)
        keep = settings.INTAKE_LOG_KEEP
        oldest_kept = (
            cls.objects.filter(integration=integration, outcome=outcome)
            .order_by("-id")
            .values_list("id", flat=True)[keep - 1 : keep]
        )
        cls.objects.filter(integration=integration, outcome=outcome, id__lt=models.Subquery(oldest_kept)).delete()
        return event


def body_excerpt(body: bytes) -> str:
    """The start of a refused body as text a page can show (and PostgreSQL can store: no NUL)."""
    return body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
