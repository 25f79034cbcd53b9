"""Runbook steps waiting for a second person's approval, for the approvals inbox (opsportal.inbox)."""

from django.db.models import Q

from opsportal.inbox import Waiting
from runbooks.choices import RunState, Safety, StepState
from runbooks.models import StepRun


def waiting_steps(user) -> list[Waiting]:
    """Steps awaiting approval that `user` may decide: never a dangerous step of a run they started."""
    steps = (
        StepRun.objects.filter(
            state=StepState.PENDING,
            approved_at__isnull=True,
            approval_requested_at__isnull=False,
            run__state=RunState.WAITING_APPROVAL,
        )
        .exclude(Q(step__safety=Safety.DANGEROUS) & Q(run__started_by=user))
        .select_related("step", "run__runbook", "run__incident", "run__started_by")
        .order_by("-approval_requested_at")[:50]
    )
    return [
        Waiting(
            title=f"Step {s.order}: {s.step.title} ({s.step.get_safety_display().lower()})",
            url=f"{s.run.get_absolute_url()}#step-run-{s.pk}",
            asked_by=s.run.started_by.get_username() if s.run.started_by else "the alert",
            asked_at=s.approval_requested_at,
            context=" · ".join(
                filter(None, [f"Run #{s.run.pk} {s.run.runbook.title}", s.run.incident and s.run.incident.reference])
            ),
        )
        for s in steps
    ]
