from django.db import models


class SectionKind(models.TextChoices):
    """What a section of a runbook is for. The first seven are the parts of the critical-alert runbook
    template (TEMPLATE_KINDS: a version shows which of them it covers); the others are what
    free-form documents add (expected results, procedures, reference material)."""

    CONTEXT = "context", "Alert context"
    FIRST_LOOK = "first_look", "First look"
    DIAGNOSTICS = "diagnostics", "Diagnostic steps"
    HYPOTHESES = "hypotheses", "Hypotheses"
    SAFE_ACTIONS = "safe_actions", "Safe actions"
    UNSAFE_ACTIONS = "unsafe_actions", "Actions that are NOT safe"
    ESCALATION = "escalation", "When and whom to escalate"
    EXPECTED = "expected", "Expected results"
    PROCEDURE = "procedure", "Procedure"
    REFERENCE = "reference", "Reference"


TEMPLATE_KINDS = [
    SectionKind.CONTEXT,
    SectionKind.FIRST_LOOK,
    SectionKind.DIAGNOSTICS,
    SectionKind.HYPOTHESES,
    SectionKind.SAFE_ACTIONS,
    SectionKind.UNSAFE_ACTIONS,
    SectionKind.ESCALATION,
]
# Lists in these sections describe rather than instruct (symptoms, escalation criteria), so they
# stay prose instead of becoming steps someone has to tick.
DESCRIPTIVE_KINDS = {SectionKind.CONTEXT, SectionKind.ESCALATION, SectionKind.EXPECTED, SectionKind.REFERENCE}


class StepKind(models.TextChoices):
    MANUAL = "manual", "Manual"
    AUTOMATED = "automated", "Automated"


class Safety(models.TextChoices):
    """What a step may do. Automated `change` steps wait for a confirmation by any responder;
    `dangerous` steps, automated or manual, wait for approval by someone other than the run's starter."""

    READ_ONLY = "read_only", "Read-only"
    CHANGE = "change", "Changes state"
    DANGEROUS = "dangerous", "Dangerous"

    @property
    def rank(self) -> int:
        return SAFETY_RANK[self.value]


SAFETY_RANK = {Safety.READ_ONLY: 0, Safety.CHANGE: 1, Safety.DANGEROUS: 2}


def strictest(*values: str) -> str:
    return max(values, key=lambda v: SAFETY_RANK[v])


class CheckStatus(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_INPUT = "waiting_input", "Waiting for input"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"


_WAITING_OR_RUNNING = {RunState.RUNNING, RunState.WAITING_INPUT, RunState.WAITING_APPROVAL}
_ENDINGS = {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.TIMED_OUT}
RUN_TRANSITIONS: dict[str, set[str]] = {
    RunState.QUEUED: _WAITING_OR_RUNNING | _ENDINGS,
    RunState.RUNNING: _WAITING_OR_RUNNING | _ENDINGS,
    RunState.WAITING_INPUT: _WAITING_OR_RUNNING | _ENDINGS,
    RunState.WAITING_APPROVAL: _WAITING_OR_RUNNING | _ENDINGS,
    RunState.SUCCEEDED: set(),
    RunState.FAILED: set(),
    RunState.CANCELLED: set(),
    RunState.TIMED_OUT: set(),
}
ACTIVE_RUN_STATES = [s for s, targets in RUN_TRANSITIONS.items() if targets]
FINISHED_RUN_STATES = [s for s, targets in RUN_TRANSITIONS.items() if not targets]


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


STEP_TRANSITIONS: dict[str, set[str]] = {
    # A manual step is ticked (succeeded) or skipped straight from pending; an automated one
    # can time out or fail there too, when no worker picks it up or the broker refuses it.
    StepState.PENDING: {
        StepState.RUNNING,
        StepState.SUCCEEDED,
        StepState.SKIPPED,
        StepState.FAILED,
        StepState.TIMED_OUT,
        StepState.CANCELLED,
    },
    # Back to pending when a transient connection error schedules another attempt.
    StepState.RUNNING: {StepState.SUCCEEDED, StepState.FAILED, StepState.TIMED_OUT, StepState.PENDING},
    StepState.SUCCEEDED: set(),
    StepState.FAILED: set(),
    StepState.SKIPPED: set(),
    StepState.TIMED_OUT: set(),
    StepState.CANCELLED: set(),
}
OPEN_STEP_STATES = [s for s, targets in STEP_TRANSITIONS.items() if targets]
