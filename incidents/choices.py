from django.db import models


class Severity(models.TextChoices):
    """SEV1 is the worst. The P-levels are what many paging tools call the same thing."""

    SEV1 = "SEV1", "SEV1 (P0) — critical: outage or data loss, all hands"
    SEV2 = "SEV2", "SEV2 (P1) — major: core feature degraded for many users"
    SEV3 = "SEV3", "SEV3 (P2) — minor: partial degradation, workaround exists"
    SEV4 = "SEV4", "SEV4 (P3) — low: cosmetic or internal, no customer impact"

    @property
    def priority(self) -> str:
        return SEVERITY_PRIORITY[self.value]


SEVERITY_PRIORITY = {"SEV1": "P0", "SEV2": "P1", "SEV3": "P2", "SEV4": "P3"}


class Status(models.TextChoices):
    TRIGGERED = "triggered", "Triggered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    INVESTIGATING = "investigating", "Investigating"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


# The lifecycle in order. Any forward move is allowed (a false alarm may go straight from
# triggered to resolved); the only backward move is a reopen, from resolved or closed back to
# investigating.
LIFECYCLE = [s.value for s in Status]
REOPEN_FROM = {Status.RESOLVED, Status.CLOSED}
REOPEN_TO = Status.INVESTIGATING
OPEN_STATUSES = [Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING, Status.MITIGATED]

# The timestamp each status stamps the first time it is reached.
STATUS_TIMESTAMP = {
    Status.ACKNOWLEDGED: "acknowledged_at",
    Status.MITIGATED: "mitigated_at",
    Status.RESOLVED: "resolved_at",
    Status.CLOSED: "closed_at",
}


def allowed_transitions(current: str) -> list[str]:
    later = LIFECYCLE[LIFECYCLE.index(current) + 1 :]
    if current in REOPEN_FROM:
        later = [REOPEN_TO.value, *later]
    return later


class EventKind(models.TextChoices):
    NOTE = "note", "Note"
    STATUS_CHANGE = "status_change", "Status change"
    ALERT = "alert", "Alert"
    ACTION = "action", "Action"
    RUNBOOK = "runbook", "Runbook"
    ESCALATION = "escalation", "Escalation"
    COMMUNICATION = "communication", "Communication"


class EventSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    SYSTEM = "system", "System"


class RevisionAction(models.TextChoices):
    EDIT = "edit", "Edited"
    ANNOTATE = "annotate", "Annotated"
    DELETE = "delete", "Deleted"
    RESTORE = "restore", "Restored"


# --- Alert intake, escalation and notifications ------------------------------------------------


class IntegrationKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
    GRAFANA = "grafana", "Grafana alerting"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class DeliveryState(models.TextChoices):
    """A stored alert payload: waiting for the worker, or applied to incidents."""

    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"


# labels.severity (lower-cased) → incident severity, unless an integration maps it otherwise.
DEFAULT_SEVERITY_MAPPING = {
    "critical": "SEV1",
    "page": "SEV1",
    "high": "SEV2",
    "error": "SEV2",
    "major": "SEV2",
    "warning": "SEV3",
    "minor": "SEV3",
    "info": "SEV4",
    "low": "SEV4",
}


class EscalationLevel(models.IntegerChoices):
    L1 = 1, "L1 — on-call engineer"
    L2 = 2, "L2 — tech lead / DBA"
    L3 = 3, "L3 — stakeholders"


class WebhookFormat(models.TextChoices):
    JSON = "json", "Generic JSON"
    SLACK = "slack", "Slack-compatible text"


class NotificationEvent(models.TextChoices):
    INCIDENT_CREATED = "incident.created", "Incident created"
    STATUS_CHANGED = "incident.status_changed", "Status changed"
    ESCALATED = "incident.escalated", "Escalated"
    REVIEW_OVERDUE = "review.overdue", "Review overdue"


class WebhookDeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
