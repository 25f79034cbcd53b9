"""Scheduled maintenance (admin > Periodic tasks): the retention sweep, the weekly clean-up
and the daily health check of the portal itself."""

import logging

from celery import shared_task
from django.conf import settings

from ops.audit import perform
from opsportal import broker
from opsportal.errors import DomainError

logger = logging.getLogger(__name__)


@shared_task(name="ops.tasks.retention_run", ignore_result=True)
def retention_run() -> dict:
    return perform("retention_run", {}, via="schedule").figures


@shared_task(name="ops.tasks.weekly_maintenance", ignore_result=True)
def weekly_maintenance() -> dict:
    """The weekly maintenance window: ANALYZE the portal's database, then the retention sweep (which
    also clears old failed jobs). Each runs on its own, so one failing does not skip the other."""
    done = {}
    for action in ("analyze", "retention_run"):
        try:
            done[action] = perform(action, {}, via="schedule", timeout=600).summary
        except DomainError as exc:  # bad parameters, refused, unreachable, too slow
            logger.warning("weekly maintenance: %s failed: %s", action, exc)
            done[action] = f"failed: {exc}"
    return done


@shared_task(name="ops.tasks.daily_health_check", ignore_result=True)
def daily_health_check() -> int | None:
    from ops.health_check import start

    run = start(severity=settings.OPS_HEALTH_CHECK_SEVERITY)
    return run.pk if run else None


def queue_request(pk: int) -> bool:
    """Queues an approved request for a worker, with the bounded publish (an approval is a request:
    it answers within BROKER_PUBLISH_TIMEOUT while the broker is down). A broker outage does not undo
    the approval: the sweep sends it again (a second message is harmless: only an approved request
    runs)."""
    try:
        broker.publish(execute_request, (pk,))
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many kinds; all mean "not queued"
        logger.warning("approved request %s could not be queued (%s); the sweep sends it again", pk, exc)
        return False
    return True


@shared_task(
    name="ops.tasks.execute_request",
    ignore_result=True,
    soft_time_limit=settings.RUNBOOK_STEP_TIMEOUT_MAX + 30,
    time_limit=settings.RUNBOOK_STEP_TIMEOUT_MAX + 60,
)
def execute_request(request_id: int) -> None:
    """An approved dangerous action (ops/approvals.py); a redelivery finds it already running and does nothing."""
    from ops.approvals import execute

    execute(request_id)


@shared_task(name="ops.tasks.sweep_action_requests", ignore_result=True)
def sweep_action_requests() -> dict:
    from ops.approvals import sweep

    return sweep()
