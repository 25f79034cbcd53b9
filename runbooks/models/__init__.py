from runbooks.models.draft import DraftState, RunbookDraft
from runbooks.models.run import RunbookRun
from runbooks.models.runbook import Runbook, RunbookAlert, RunbookDocument, RunbookStep, RunbookVersion
from runbooks.models.step_run import StepRun

__all__ = [
    "DraftState",
    "Runbook",
    "RunbookAlert",
    "RunbookDocument",
    "RunbookDraft",
    "RunbookRun",
    "RunbookStep",
    "RunbookVersion",
    "StepRun",
]
