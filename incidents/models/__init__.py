"""Models of the incidents app, one module per concept; import them from here."""

from incidents.models.incident import (
    ROLE_FIELDS,
    Incident,
    IncidentQuerySet,
    Service,
    TimelineEvent,
    TimelineEventQuerySet,
    TimelineEventRevision,
)

__all__ = [
    "ROLE_FIELDS",
    "Incident",
    "IncidentQuerySet",
    "Service",
    "TimelineEvent",
    "TimelineEventQuerySet",
    "TimelineEventRevision",
]
