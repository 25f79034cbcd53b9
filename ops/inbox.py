"""Dangerous ops actions waiting for a second admin, for the approvals inbox (opsportal.inbox)."""

from django.urls import reverse
from django.utils import timezone

from ops.choices import RequestState
from ops.models import ActionRequest
from opsportal.inbox import Waiting
from opsportal.roles import is_admin


def waiting_requests(user) -> list[Waiting]:
    """Pending requests another admin asked for (only admins decide them)."""
    if not is_admin(user):
        return []
    requests = (
        ActionRequest.objects.filter(state=RequestState.PENDING, expires_at__gt=timezone.now())
        .exclude(requested_by=user)
        .select_related("requested_by", "service", "incident")[:50]
    )
    return [
        Waiting(
            title=f"{r.action}: {r.reason}",
            url=f"{reverse('ops:console')}#ops-requests",
            asked_by=r.requested_by.get_username() if r.requested_by else "someone",
            asked_at=r.requested_at,
            context=" · ".join(filter(None, [r.service and r.service.name, r.incident and r.incident.reference])),
        )
        for r in requests
    ]
