from runbooks.models.draft import DraftState, RunbookDraft
from runbooks.models.run import RunbookRun, StepRun
from runbooks.models.runbook import Runbook, RunbookAlert, RunbookDocument, RunbookStep, RunbookVersion

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
