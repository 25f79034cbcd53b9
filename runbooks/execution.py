"""What a worker does with a claimed step: resolve its target, run its action, mask what comes back."""

import logging
import time
import traceback
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded

from opsportal.connections import Masker
from runbooks.actions import ACTIONS, ActionError, ParamsError, StepTimeout, Target, TransientError
from runbooks.choices import StepState

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    state: str
    summary: str
    output: str = ""
    result: dict = field(default_factory=dict)
    transient: bool = False


def execute(step_run) -> Outcome:
    """Runs the action of a claimed StepRun (its run and step loaded); never raises."""
    step = step_run.step
    masker = Masker()
    target = Target(
        step.target_service or step_run.run.target, masker, actor=step_run.approved_by or step_run.run.started_by
    )
    started = time.perf_counter()
    try:
        action = ACTIONS[step.action]
        # Checked again here: a worker never trusts what was stored (e.g. SQL must still be read-only).
        params = action.validate(dict(step.params))
        check = action.run(params, target, float(step.timeout))
    except (StepTimeout, SoftTimeLimitExceeded) as exc:
        message = str(exc) if isinstance(exc, StepTimeout) else f"Stopped at the step's time limit ({step.timeout} s)."
        outcome = Outcome(StepState.TIMED_OUT, message, message, {"error": message})
    except TransientError as exc:
        outcome = Outcome(StepState.FAILED, str(exc), str(exc), {"error": str(exc)}, transient=True)
    except (ActionError, ParamsError, KeyError) as exc:
        message = str(exc) if not isinstance(exc, KeyError) else f"Unknown action {step.action!r}."
        outcome = Outcome(StepState.FAILED, message, message, {"error": message})
    except Exception as exc:  # noqa: BLE001 - a bug in an action fails its step, never the worker
        logger.error("step run %s crashed: %s", step_run.pk, masker(traceback.format_exc()))
        message = f"Unexpected error: {type(exc).__name__}: {exc}"
        outcome = Outcome(StepState.FAILED, message, message, {"error": message})
    else:
        outcome = Outcome(
            StepState.SUCCEEDED, f"{check.status.upper()}: {check.summary}", check.output, check.as_json()
        )
    outcome.result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    outcome.summary = masker(outcome.summary)[:500]
    outcome.output = masker(outcome.output)
    outcome.result = masker.data(outcome.result)
    _audit(step_run, outcome)
    return outcome


def _audit(step_run, outcome: Outcome) -> None:
    """Change and dangerous steps leave an audit record: who started (and approved) them, on what."""
    from ops.audit import record

    step, run = step_run.step, step_run.run
    if step.action not in ACTIONS:
        return
    try:
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
    except Exception as exc:  # noqa: BLE001 - the step's own result is recorded regardless
        logger.error("could not audit step run %s: %s", step_run.pk, exc)
