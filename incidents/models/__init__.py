"""Models of the incidents app, one module per concept; import them from here."""

from incidents.models.alerts import Alert, AlertDelivery, AlertGroup, Integration
from incidents.models.escalation import EscalationContact, EscalationPolicy, SlaClock
from incidents.models.incident import (
    ROLE_FIELDS,
    Incident,
    IncidentQuerySet,
    Service,
    TimelineEvent,
    TimelineEventQuerySet,
    TimelineEventRevision,
)
from incidents.models.notifications import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ROLE_FIELDS",
    "Alert",
    "AlertDelivery",
    "AlertGroup",
    "EscalationContact",
    "EscalationPolicy",
    "Incident",
    "IncidentQuerySet",
    "Integration",
    "Service",
    "SlaClock",
    "TimelineEvent",
    "TimelineEventQuerySet",
    "TimelineEventRevision",
    "WebhookDelivery",
    "WebhookEndpoint",
]
