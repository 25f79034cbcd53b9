"""Celery tasks: thin wrappers around the StepRun verbs (routes and limits in settings; the
reaper's schedule in the admin under "Periodic tasks")."""

from celery import shared_task

from runbooks.execution import execute
from runbooks.models import StepRun


@shared_task(name="runbooks.run_step", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_step(step_run_id: int, attempt: int) -> str:
    """Runs one attempt of an automated step. A redelivered or stale message finds the step no
    longer pending for this attempt and does nothing, so a finished step never runs again."""
    step_run = StepRun.claim(step_run_id, attempt, worker=run_step.request.hostname or "")
    if step_run is None:
        return "skipped"
    outcome = execute(step_run)
    StepRun.record(step_run, attempt, outcome)
    return outcome.state


@shared_task(name="runbooks.reap_stuck_steps", ignore_result=True)
def reap_stuck_steps() -> int:
    return StepRun.reap()
