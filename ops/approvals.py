"""Dangerous ops actions outside a runbook: one admin asks (with a reason, and a dry run the portal
takes at once), another approves, a worker runs it exactly once. The same rule as a runbook's
dangerous step — nobody approves their own — for the actions the seeds mark as not safe to do alone:
purge a queue, remove failed tasks, flush the cache or invalidate everything, REINDEX, terminate
queries.

States: pending → approved → running → succeeded | failed; pending → rejected (someone else said
no), cancelled (the requester withdrew it) or expired (nobody decided within OPS_APPROVAL_TTL_MINUTES:
what the dry run showed is stale by then, so it has to be asked for again).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ops.audit import perform
from ops.choices import RequestState
from ops.models import ActionRequest, username_of
from ops.notifications import notify_approval_requested, page_approvers_of
from ops.tasks import queue_request
from opsportal.connections import Masker
from opsportal.errors import DomainError
from runbooks.actions import ACTIONS, ActionError, ParamsError, Target
from runbooks.choices import Safety

logger = logging.getLogger(__name__)
PREVIEW_TIMEOUT = 10.0
RESEND_AFTER = timedelta(minutes=2)  # approved, yet no worker started it: its message was lost


def approvable() -> list[str]:
    """The actions that can be dangerous, so can be asked for here (all of them on the portal itself)."""
    return sorted(name for name, spec in ACTIONS.items() if spec.safety == Safety.DANGEROUS or spec.safety_for)


def ask(action: str, params: dict, *, by, reason: str, via: str = "api", incident=None, service=None) -> ActionRequest:
    """Validates, takes the dry run and records the request. ParamsError for bad input (nothing
    stored), ActionError/TransientError when the dry run cannot reach what it would act on."""
    spec = ACTIONS.get(action)
    if spec is None or action not in approvable():
        raise ParamsError(
            f"{action!r} is not a dangerous action; these need approval: {', '.join(approvable())}. "
            "Change actions run directly through their own endpoints."
        )
    reason = (reason or "").strip()
    if not reason:
        raise ParamsError("Say why (reason): the approver and the audit trail need it.")
    if "dry_run" in params:
        raise ParamsError("Leave dry_run out: every request takes a dry run first and shows it to the approver.")
    clean = spec.validate(dict(params))
    spec.check_target(clean, service)
    # Judged by its effect on the target (how many keys a cache pattern deletes), not only its syntax.
    if spec.safety_of(clean, Target(service, Masker(), actor=by)) != Safety.DANGEROUS:
        raise ParamsError(
            f"{action} with these parameters is not dangerous: run it directly (POST /api/ops/cache/invalidate)."
        )
    if clean.get("dangerous") is False:
        clean["dangerous"] = True  # asked for as dangerous, so once approved it runs as such
    preview = perform(action, {**clean, "dry_run": True}, by=by, via=via, service=service, timeout=PREVIEW_TIMEOUT)
    if action == "terminate_long_queries":
        # The approver approves the queries they saw, not whatever is old when the worker gets there.
        seen = [{"pid": q["pid"], "started": q["started"]} for q in preview.data.get("queries", [])]
        if not seen:
            raise ActionError(f"{preview.summary}: there is nothing to ask approval for.")
        clean = spec.validate({**clean, "only_queries": seen})
    with transaction.atomic():
        request = ActionRequest.objects.create(
            action=action,
            params={k: v for k, v in clean.items() if k != "dry_run"},
            reason=reason[:500],
            via=via,
            service=service,
            incident=incident,
            preview=preview.as_json(),
            requested_by=by,
            expires_at=timezone.now() + timedelta(minutes=settings.OPS_APPROVAL_TTL_MINUTES),
        )
        notify_approval_requested(request)
        request.event(
            f"{request.label} asked for by {username_of(by)}, waiting for another admin's approval: "
            f"{reason}\n\n{preview.summary}",
            by=by,
        )
        page_approvers_of(request)
    logger.warning("ops action %s requested by %s (request %s)", action, username_of(by), request.pk)
    return request


def approve(pk: int, *, by, note: str = "") -> ActionRequest:
    return _get(pk).approve(by=by, note=note)


def reject(pk: int, *, by, note: str = "") -> ActionRequest:
    return _get(pk).reject(by=by, note=note)


def _get(pk: int) -> ActionRequest:
    request = ActionRequest.objects.filter(pk=pk).first()
    if request is None:
        raise DomainError(f"No action request with id {pk}.")
    return request


def execute(pk: int) -> ActionRequest | None:
    """Runs an approved request, once (the worker task's body); None when it is not approved (any more)."""
    request = ActionRequest.start(pk)
    if request is None:
        return None
    try:
        check = perform(
            request.action,
            request.params,
            by=request.requested_by,
            approved_by=request.decided_by,
            via=request.via,
            service=request.service,
            incident=request.incident,
            timeout=float(settings.RUNBOOK_STEP_TIMEOUT_MAX),
        )
    except DomainError as exc:  # bad parameters, refused, unreachable, too slow: the request failed
        return request.finish(RequestState.FAILED, str(exc), {"error": str(exc)})
    except Exception as exc:
        logger.exception("ops action request %s failed", pk)
        request.finish(RequestState.FAILED, f"Internal error: {type(exc).__name__}", {"error": type(exc).__name__})
        raise
    return request.finish(RequestState.SUCCEEDED, check.summary, check.as_json())


def sweep(*, lost_after: timedelta | None = None) -> dict:
    """Expires undecided requests, sends again approved ones no worker started (their message was
    lost, or the broker was down at approval), and fails those whose worker died mid-run (the
    action's outcome is unknown: check the target before asking again). Beat runs it every minute."""
    lost_after = lost_after or timedelta(seconds=settings.RUNBOOK_STEP_TIMEOUT_MAX + 120)
    expired = ActionRequest.objects.expire_stale()
    unsent = ActionRequest.objects.filter(state=RequestState.APPROVED, decided_at__lt=timezone.now() - RESEND_AFTER)
    resent = 0
    for pk in unsent.values_list("pk", flat=True):
        if not queue_request(pk):
            break  # the broker does not answer: each further publish would wait out its timeout too
        resent += 1
    lost = 0
    for pk in ActionRequest.objects.filter(
        state=RequestState.RUNNING, started_at__lt=timezone.now() - lost_after
    ).values_list("pk", flat=True):
        with transaction.atomic():
            request = ActionRequest.locked(pk)
            if request.state != RequestState.RUNNING:
                continue
            message = "The worker running it was lost; whether the action took effect is unknown. Check the target."
            request.finish(RequestState.FAILED, message, {"error": "worker lost"})
            request.event(f"{request.label} failed: {message}")
            lost += 1
    return {"expired": expired, "resent": resent, "lost": lost}
