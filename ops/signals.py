"""What ops records of other apps' events: failed Celery tasks become FailedTask rows (listed and
requeued from the ops API), finished runbook steps that change something leave an audit record,
and changes to incidents drop the cached dashboard figures."""

import logging
import traceback as tb

from celery.signals import task_failure
from django.db import DatabaseError
from django.dispatch import receiver

from ops.audit import record
from runbooks.actions import ACTIONS
from runbooks.choices import Safety, StepState
from runbooks.signals import step_executed

logger = logging.getLogger(__name__)


@task_failure.connect(weak=False)
def record_failed_task(sender=None, task_id=None, exception=None, args=None, kwargs=None, einfo=None, **extra):
    from ops.models import FailedTask

    request = getattr(sender, "request", None)
    delivery = getattr(request, "delivery_info", None) or {}
    try:
        FailedTask.objects.update_or_create(
            task_id=task_id or "",
            defaults={
                "name": getattr(sender, "name", "") or "",
                "queue": (delivery.get("routing_key") or "")[:100],
                "args": list(args or []),
                "kwargs": dict(kwargs or {}),
                "exception": f"{type(exception).__name__}: {exception}"[:500],
                "traceback": str(einfo) if einfo else "".join(tb.format_exception(exception))[-20_000:],
                "requeued_at": None,
                "removed_at": None,
            },
        )
    except DatabaseError as exc:  # the failure is still in the worker's log
        logger.error("could not record failed task %s: %s", task_id, exc)


@receiver(step_executed, dispatch_uid="ops-audit-step")
def audit_step(sender, step_run, outcome, **kwargs) -> None:
    """Change and dangerous steps leave an audit record: who started (and approved) them, on what."""
    step, run = step_run.step, step_run.run
    if step.action not in ACTIONS or ACTIONS[step.action].safety_of(dict(step.params)) == Safety.READ_ONLY:
        return  # nothing to audit: decided before the starter, approver and incident are loaded
    record(
        step.action,
        dict(step.params),
        ok=outcome.state == StepState.SUCCEEDED,
        result={**outcome.result, "run": run.pk, "step": step_run.order},
        summary=outcome.summary,
        by=step_run.approved_by or run.started_by,
        approved_by=step_run.approved_by,
        via="runbook",
        service=step.target_service or run.target,
        incident=run.incident,
    )


def _dashboard_changed(sender=None, **kwargs) -> None:
    from django.db import transaction

    from opsportal.tagged_cache import invalidate

    def drop():
        try:
            invalidate(["dashboard"])
        except Exception as exc:  # noqa: BLE001 - the figures expire within minutes anyway
            logger.warning("could not invalidate the dashboard cache: %s", exc)

    # Now, so this request sees it, and after commit, so no reader caches the state before the change.
    drop()
    transaction.on_commit(drop)


def _connect_dashboard() -> None:
    from django.db.models.signals import post_delete, post_save

    from incidents.models import Incident, SlaClock

    for model in (Incident, SlaClock):
        post_save.connect(_dashboard_changed, sender=model, weak=False, dispatch_uid=f"dashboard-{model.__name__}")
        post_delete.connect(
            _dashboard_changed, sender=model, weak=False, dispatch_uid=f"dashboard-del-{model.__name__}"
        )


_connect_dashboard()
