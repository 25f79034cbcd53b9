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
from incidents.models.review import (
    ActionItem,
    PostIncidentReview,
    PublishIncomplete,
    ReviewChange,
    ReviewReopening,
)
from incidents.reports import ProblemReport

__all__ = [
    "ROLE_FIELDS",
    "ActionItem",
    "Incident",
    "IncidentQuerySet",
    "PostIncidentReview",
    "ProblemReport",
    "PublishIncomplete",
    "ReviewChange",
    "ReviewReopening",
    "Service",
    "TimelineEvent",
    "TimelineEventQuerySet",
    "TimelineEventRevision",
]
