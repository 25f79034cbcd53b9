"""Queueing a step's attempt for a worker: the queue it goes on, the worker's time limits, and what
the step says when the broker does not answer.

The publish is the bounded one (opsportal.broker), after commit. A step whose publish fails stays
queued and says so once; the reaper (StepRun.republish) publishes it again. StepRun publishes
through this module, so the one place here that writes a step row imports StepRun where it does.
"""

import logging

from django.db import transaction
from django.utils import timezone

from opsportal import broker
from runbooks.choices import StepState

logger = logging.getLogger(__name__)

# Seconds the worker's soft and hard time limits add to a step's own timeout, and the reaper's
# grace on top of the hard limit before it declares the worker lost.
SOFT_LIMIT_MARGIN, HARD_LIMIT_MARGIN, REAPER_GRACE = 5, 15, 30


def publish_step(step_run_id: int, attempt: int, *, timeout: int, first_look: bool, countdown: float = 0) -> None:
    """Publishes attempt `attempt` of a step once the current transaction commits, on the
    first_look queue for a first look's checks (so deliveries or long runs never starve them).
    When the broker does not answer, the step stays queued and says why (`_wait_for_broker`)."""
    from runbooks.tasks import run_step  # the task module imports the models

    def publish():
        try:
            broker.publish(
                run_step,
                (step_run_id, attempt),
                countdown=countdown or None,
                queue="first_look" if first_look else "runbooks",
                soft_time_limit=timeout + SOFT_LIMIT_MARGIN,
                time_limit=timeout + HARD_LIMIT_MARGIN,
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure must show on the step, not vanish
            logger.warning("could not queue step run %s: %s: %s", step_run_id, type(exc).__name__, exc)
            _wait_for_broker(step_run_id, attempt, exc)

    transaction.on_commit(publish)


WAITS_FOR_BROKER = "it will be queued again when the broker answers."


def _wait_for_broker(step_run_id: int, attempt: int, exc: Exception) -> None:
    """A step whose publish failed stays queued (pending, enqueued_at set): the reaper publishes it
    again after RUNBOOK_STEP_REPUBLISH_AFTER, and times it out past RUNBOOK_STEP_QUEUE_TIMEOUT like
    any step no worker took. Its output and the incident's timeline say why it waits, once while
    the broker stays down (the sweep's next failed publish finds the line last in the output)."""
    from runbooks.models.step_run import StepRun, cap_output  # step_run.py publishes through this module

    line = f"Could not queue the step for a worker ({type(exc).__name__}); {WAITS_FOR_BROKER}"
    waiting = StepRun.objects.filter(pk=step_run_id, state=StepState.PENDING, attempts=attempt - 1).exclude(
        output__endswith=f"{WAITS_FOR_BROKER}\n"
    )
    step_run = waiting.select_related("step", "run__incident").first()
    if step_run is None:
        return  # claimed, cancelled or ended meanwhile, or already says so
    noted = waiting.update(output=cap_output(f"{step_run.output}{line}\n"), updated_at=timezone.now())
    if noted:
        step_run.run._event(f"{step_run.run._label(step_run)}: {line}")
