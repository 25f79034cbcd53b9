"""A dangerous step waiting for approval pages the people who may approve it: responders other
than whoever started the run, on-call ones first (incidents/alerting/paging.py picks and pages
them). Steps that only change state are confirmed by any responder, the starter included, so they
page nobody."""

from incidents.alerting.paging import page_approvers
from incidents.models.alerts import portal_base_url
from opsportal.roles import users_who_respond

SOURCE = "step-approval"  # source keys `step-approval:<step run pk>` (registered in RunbooksConfig.ready)


def page_step_approvers(run, step_run) -> None:
    """Inside the transaction that put `step_run` of `run` up for approval."""
    who = run.started_by.get_username() if run.started_by else "the alert"
    what = f"step {step_run.order}/{run.step_count} “{step_run.step.title}” of run #{run.pk}"
    text = f"Approval needed: {what} ({run.runbook.title}), started by {who}"
    if run.incident_id:
        text += f", for {run.incident.reference}"
    page_approvers(
        users_who_respond(),
        requester=run.started_by,
        what=what,
        text=text,
        link=f"{portal_base_url()}{run.get_absolute_url()}#step-run-{step_run.pk}",
        source_key=f"{SOURCE}:{step_run.pk}",
        incident=run.incident,
    )
