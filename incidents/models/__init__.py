"""Models of the incidents app, one module per concept; import them from here."""

from incidents.models.alerts import Alert, AlertDelivery, AlertGroup, Integration
from incidents.models.emails import UnqueuedEmail
from incidents.models.escalation import EscalationContact, EscalationPolicy, SlaClock
from incidents.models.feeds import CalendarFeed
from incidents.models.incident import (
    ROLE_FIELDS,
    Incident,
    IncidentQuerySet,
    Service,
    TimelineEvent,
    TimelineEventQuerySet,
    TimelineEventRevision,
)
from incidents.models.intake_log import IntakeEvent
from incidents.models.notifications import WebhookDelivery, WebhookEndpoint
from incidents.models.paging import NotificationRule, Page, PageChannel, PagePurpose, PageState
from incidents.models.report import ProblemReport
from incidents.models.review import (
    ActionItem,
    PostIncidentReview,
    PublishIncomplete,
    ReviewChange,
    ReviewReopening,
)
from incidents.models.schedules import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride

__all__ = [
    "ROLE_FIELDS",
    "ActionItem",
    "Alert",
    "AlertDelivery",
    "AlertGroup",
    "CalendarFeed",
    "EscalationContact",
    "EscalationPolicy",
    "Incident",
    "IncidentQuerySet",
    "IntakeEvent",
    "Integration",
    "LayerParticipant",
    "NotificationRule",
    "Page",
    "PageChannel",
    "PagePurpose",
    "PageState",
    "PostIncidentReview",
    "ProblemReport",
    "PublishIncomplete",
    "ReviewChange",
    "ReviewReopening",
    "Schedule",
    "ScheduleLayer",
    "ScheduleOverride",
    "Service",
    "SlaClock",
    "TimelineEvent",
    "TimelineEventQuerySet",
    "TimelineEventRevision",
    "UnqueuedEmail",
    "WebhookDelivery",
    "WebhookEndpoint",
]
