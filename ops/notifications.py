"""What webhooks and people hear from the ops app: a dangerous action waits for a second admin
(ops/approvals.py), so it does not sit unseen until it expires. The event is registered in
OpsConfig.ready(); incidents delivers it like its own, and pages the admins who may approve it
(on-call ones first; incidents/alerting/paging.py)."""

from django.urls import reverse
from django.utils import timezone

from incidents.alerting.notify import notify
from incidents.alerting.paging import page_approvers
from incidents.models.alerts import portal_base_url
from ops.choices import RequestState
from ops.models import ActionRequest
from opsportal.roles import users_who_respond

APPROVAL_REQUESTED = "ops.approval_requested"
APPROVAL_REQUESTED_LABEL = "Dangerous ops action awaits approval"
PAGE_SOURCE = "ops-approval"  # source keys `ops-approval:<request pk>` (registered in OpsConfig.ready)


def notify_approval_requested(request: ActionRequest) -> None:
    """Every endpoint subscribed to ops.approval_requested hears of the new request, after commit."""
    who = request.requested_by.get_username() if request.requested_by else "Ops Portal"
    reference = f"request #{request.pk}"
    url = request_url(request)
    notify(
        APPROVAL_REQUESTED,
        text=f"{who} asks another admin to approve `{request.action}` ({reference}): {request.reason}",
        data={
            "approval": {
                "id": request.pk,
                "reference": reference,
                "action": request.action,
                "params": request.params,
                "reason": request.reason,
                "requested_by": who,
                "dry_run": request.preview.get("summary", ""),
                "expires_at": request.expires_at.isoformat(),
                "incident": request.incident.reference if request.incident_id else None,
                "url": url,
            },
        },
        url=url,
        reference=reference,
        source_key=f"approval:{request.pk}",
        incident=request.incident,
    )


def request_url(request: ActionRequest) -> str:
    return portal_base_url() + reverse("ops:console") + f"#request-{request.pk}"


def page_approvers_of(request: ActionRequest) -> None:
    """Pages the other admins (on-call ones first) in the transaction that recorded the request."""
    who = request.requested_by.get_username() if request.requested_by else "Ops Portal"
    what = f"`{request.action}` (request #{request.pk})"
    page_approvers(
        users_who_respond(admins_only=True),
        requester=request.requested_by,
        what=what,
        text=f"Approval needed: {who} asks another admin to approve {what}: {request.reason}",
        link=request_url(request),
        source_key=f"{PAGE_SOURCE}:{request.pk}",
        incident=request.incident,
    )


def awaits_approval(pk: int) -> bool:
    return ActionRequest.objects.filter(pk=pk, state=RequestState.PENDING, expires_at__gt=timezone.now()).exists()
