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
# triggered to resolved) except closing: an incident is closed once resolved, or, from an open
# status, only with a reason (a duplicate, a false page), which stamps it resolved too so the
# review opens and time to resolve exists. The only backward move is a reopen, from resolved or
# closed back to investigating.
LIFECYCLE = [s.value for s in Status]
REOPEN_FROM = {Status.RESOLVED, Status.CLOSED}
REOPEN_TO = Status.INVESTIGATING
OPEN_STATUSES = [Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING, Status.MITIGATED]

# from → {to: needs a reason}. The one table the verb, the portal, the API and the admin read.
TRANSITIONS: dict[str, dict[str, bool]] = {
    Status.TRIGGERED: {
        "acknowledged": False,
        "investigating": False,
        "mitigated": False,
        "resolved": False,
        "closed": True,
    },
    Status.ACKNOWLEDGED: {"investigating": False, "mitigated": False, "resolved": False, "closed": True},
    Status.INVESTIGATING: {"mitigated": False, "resolved": False, "closed": True},
    Status.MITIGATED: {"resolved": False, "closed": True},
    Status.RESOLVED: {"investigating": False, "closed": False},
    Status.CLOSED: {"investigating": False},
}

# What a person does to reach a status: buttons are verbs, not the state they lead to.
ACTION_LABELS = {
    Status.ACKNOWLEDGED: "Acknowledge",
    Status.INVESTIGATING: "Start investigating",
    Status.MITIGATED: "Mitigate",
    Status.RESOLVED: "Resolve",
    Status.CLOSED: "Close",
}
# Actions a person confirms before they happen (they end the response).
CONFIRM_ACTIONS = {Status.RESOLVED, Status.CLOSED}

# The timestamp each status stamps the first time it is reached.
STATUS_TIMESTAMP = {
    Status.ACKNOWLEDGED: "acknowledged_at",
    Status.MITIGATED: "mitigated_at",
    Status.RESOLVED: "resolved_at",
    Status.CLOSED: "closed_at",
}


def allowed_transitions(current: str) -> list[str]:
    """Every status reachable from `current`, in lifecycle order (reopen first)."""
    return list(TRANSITIONS[current])


def needs_reason(current: str, target: str) -> bool:
    return TRANSITIONS.get(current, {}).get(target, False)


def next_step(current: str) -> str | None:
    """The lifecycle's next status: the primary action. None once closed (reopening is never the default)."""
    later = [s for s in TRANSITIONS[current] if LIFECYCLE.index(s) > LIFECYCLE.index(current)]
    return later[0] if later else None


def action_label(current: str, target: str) -> str:
    if current in REOPEN_FROM and target == REOPEN_TO:
        return "Reopen"
    if needs_reason(current, target):
        return "Close without resolving"
    return ACTION_LABELS[target]


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


class ReviewState(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"


# Reviews move forward (a draft may be published directly); a published review is reopened
# for amendments back to draft, with a reason.
REVIEW_TRANSITIONS = {
    ReviewState.DRAFT: {ReviewState.IN_REVIEW, ReviewState.PUBLISHED},
    ReviewState.IN_REVIEW: {ReviewState.PUBLISHED, ReviewState.DRAFT},
    ReviewState.PUBLISHED: {ReviewState.DRAFT},
}


class ActionItemKind(models.TextChoices):
    FIX = "fix", "Fix"
    TEST = "test", "Test"
    ALERT = "alert", "Alert"
    RUNBOOK = "runbook", "Runbook"
    PROCESS = "process", "Process"


class ActionItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won't do"


# The review's clocks: (name, label, from-field, to-field) on the incident. Acknowledge,
# mitigate and resolve run from detection (the responders' clock); detect runs from the start
# of impact.
TIME_METRICS = [
    ("detect", "Time to detect", "started_at", "detected_at"),
    ("acknowledge", "Time to acknowledge", "detected_at", "acknowledged_at"),
    ("mitigate", "Time to mitigate", "detected_at", "mitigated_at"),
    ("resolve", "Time to resolve", "detected_at", "resolved_at"),
]


class ReportStatus(models.TextChoices):
    """A problem report from the public status page, as staff triage it."""

    NEW = "new", "New"
    ESCALATED = "escalated", "Turned into an incident"
    DISMISSED = "dismissed", "Dismissed"


# Triage happens once: a report leaves "new" for good.
REPORT_TRANSITIONS = {
    ReportStatus.NEW: {ReportStatus.ESCALATED, ReportStatus.DISMISSED},
    ReportStatus.ESCALATED: set(),
    ReportStatus.DISMISSED: set(),
}


class PublicState(models.TextChoices):
    """A service's state on the public status page, worst first."""

    MAJOR_OUTAGE = "major_outage", "Major outage"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    DEGRADED = "degraded", "Degraded performance"
    MONITORING = "monitoring", "Recovering"
    OPERATIONAL = "operational", "Operational"


# The state an open public incident puts its services in; mitigated ones are "recovering".
SEVERITY_PUBLIC_STATE = {
    "SEV1": PublicState.MAJOR_OUTAGE,
    "SEV2": PublicState.PARTIAL_OUTAGE,
    "SEV3": PublicState.DEGRADED,
    "SEV4": PublicState.DEGRADED,
}

# The kinds a person may write (status changes are the lifecycle's own entries).
MANUAL_EVENT_KINDS = [(value, label) for value, label in EventKind.choices if value != EventKind.STATUS_CHANGE]
# --- Alert intake, escalation and notifications ------------------------------------------------


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


class WebhookDeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


# Pages (incidents.models.paging): how a person was reached, and what became of it.
class PageChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Personal webhook"
    NONE = "none", "Nobody to page"


class PagePurpose(models.TextChoices):
    ESCALATION = "escalation", "Escalation"
    APPROVAL = "approval", "Approval"
    TEST = "test", "Test page"


class PageState(models.TextChoices):
    PENDING = "pending", "Waiting"
    SENT = "sent", "Delivered"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Not sent (acknowledged or decided first)"
    UNROUTED = "unrouted", "Nobody to page"


class IntakeOutcome(models.TextChoices):
    """What the intake answered one request of an integration (its delivery log)."""

    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate"
    REFUSED = "refused", "Refused"
