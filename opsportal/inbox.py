"""What waits for the signed-in person's approval, gathered from the apps that ask for approvals.

The platform knows no app: each app that asks a second person to approve something registers a
source from its AppConfig.ready() (`register(source)`). A source takes the user and returns the
`Waiting` items that user may decide on (never what they asked for themselves), newest first,
with one query whatever their number. The navigation badge (`inbox_context`) and the dashboard's
"Waiting for your approval" card read the same sources; people who cannot approve cost nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from opsportal.roles import is_responder


@dataclass(frozen=True)
class Waiting:
    title: str  # what is to be approved
    url: str  # where to decide
    asked_by: str
    asked_at: datetime | None
    context: str = ""  # the incident, the service


_sources: list[Callable] = []


def register(source: Callable) -> None:
    _sources.append(source)


def waiting_for(user) -> list[Waiting]:
    if not is_responder(user):
        return []
    items = [item for source in _sources for item in source(user)]
    return sorted(items, key=lambda i: i.asked_at.timestamp() if i.asked_at else 0, reverse=True)


def inbox_context(request) -> dict:
    """The navigation badge: how many approvals wait for this person (computed only when shown)."""
    user = getattr(request, "user", None)
    if request.headers.get("HX-Request") or not is_responder(user):
        return {"approvals_waiting": 0}
    return {"approvals_waiting": len(waiting_for(user))}
