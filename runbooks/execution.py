"""What a worker does with a claimed step: resolve its target, run its action, mask what comes back."""

import logging
import time
import traceback
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.utils.functional import SimpleLazyObject

from opsportal.connections import Masker
from opsportal.errors import BadParameters
from runbooks.actions import ACTIONS, ActionError, StepTimeout, Target, TransientError
from runbooks.choices import StepState
from runbooks.signals import step_executed

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
    target = Target(step.target_service or step_run.run.target, masker, actor=_actor(step_run))
    started = time.perf_counter()
    try:
        action = ACTIONS[step.action]
        # Checked again here: a worker never trusts what was stored (e.g. SQL must still be read-only).
        params = action.validate(step_run.filled_params())
        # The service may have lost the setting since the run started: refused, never the portal instead.
        action.check_target(params, target.service)
        check = action.run(params, target, float(step.timeout))
    except (StepTimeout, SoftTimeLimitExceeded) as exc:
        message = str(exc) if isinstance(exc, StepTimeout) else f"Stopped at the step's time limit ({step.timeout} s)."
        outcome = Outcome(StepState.TIMED_OUT, message, message, {"error": message})
    except TransientError as exc:
        outcome = Outcome(StepState.FAILED, str(exc), str(exc), {"error": str(exc)}, transient=True)
    except (ActionError, BadParameters, KeyError) as exc:
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
    _announce(step_run, outcome)
    return outcome


def _actor(step_run):
    """Who the step runs for (its approver, else whoever started the run), loaded only if an action
    asks: most steps never do, and a first look has nobody."""
    user_id = step_run.approved_by_id or step_run.run.started_by_id
    if user_id is None:
        return None
    return SimpleLazyObject(lambda: step_run.approved_by or step_run.run.started_by)


def _announce(step_run, outcome: Outcome) -> None:
    for receiver, response in step_executed.send_robust(type(step_run), step_run=step_run, outcome=outcome):
        if isinstance(response, Exception):  # the step's own result is recorded regardless
            logger.error("step run %s: %s failed: %s", step_run.pk, getattr(receiver, "__name__", receiver), response)
