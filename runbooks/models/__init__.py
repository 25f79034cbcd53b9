from runbooks.models.run import RunbookRun, StepRun
from runbooks.models.runbook import Runbook, RunbookDocument, RunbookStep, RunbookVersion

__all__ = ["Runbook", "RunbookDocument", "RunbookRun", "RunbookStep", "RunbookVersion", "StepRun"]
