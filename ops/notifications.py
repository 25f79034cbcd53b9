"""What webhooks hear from the ops app: a dangerous action waits for a second admin
(ops/approvals.py), so it does not sit unseen until it expires. The event is registered in
OpsConfig.ready(); incidents delivers it like its own."""

from django.urls import reverse

from incidents.alerting.notify import notify
from incidents.models.alerts import portal_base_url
from ops.models import ActionRequest

APPROVAL_REQUESTED = "ops.approval_requested"
APPROVAL_REQUESTED_LABEL = "Dangerous ops action awaits approval"


def notify_approval_requested(request: ActionRequest) -> None:
    """Every endpoint subscribed to ops.approval_requested hears of the new request, after commit."""
    who = request.requested_by.get_username() if request.requested_by else "Ops Portal"
    reference = f"request #{request.pk}"
    url = portal_base_url() + reverse("ops:console") + f"#request-{request.pk}"
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
