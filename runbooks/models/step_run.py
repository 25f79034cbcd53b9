"""A step of a run (StepRun): what people see of it, and the verbs of the workers and the reaper.

A worker's step costs two statements to claim and three to record, none of them on the run row
unless something must be decided (see `for_worker`, `claim`, `record` and `_end`); the reaper
(`reap`, every minute) ends or re-runs the steps whose worker was lost, publishes again the queued
ones whose message may be lost, times out those no worker took, and moves on the runs stalled
between two steps (`stalled_runs`).

run.py imports this module (a run creates, locks and releases its steps), so the few places here
that need the RunbookRun class itself, rather than a step's `run`, import it where they use it.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from opsportal.errors import BadParameters, InvalidTransition
from opsportal.roles import is_responder
from runbooks import parameters
from runbooks.actions import ACTIONS
from runbooks.choices import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    STEP_TRANSITIONS,
    RunState,
    Safety,
    StepKind,
    StepState,
)
from runbooks.metrics import observe_runbook_step
from runbooks.models.queueing import HARD_LIMIT_MARGIN, REAPER_GRACE, publish_step
from runbooks.models.run_plan import fill
from runbooks.models.runbook import RunbookStep

logger = logging.getLogger(__name__)


def cap_output(text: str) -> str:
    limit = settings.RUNBOOK_STEP_OUTPUT_LIMIT
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [output truncated: {len(text) - limit} more characters]"


class StepRun(models.Model):
    run = models.ForeignKey("runbooks.RunbookRun", on_delete=models.CASCADE, related_name="step_runs")
    step = models.ForeignKey(RunbookStep, on_delete=models.PROTECT, related_name="+")
    order = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    output = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When the next attempt is due on the queue.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="Running past this, the worker is presumed lost."
    )
    worker = models.CharField(max_length=200, blank=True)
    published_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep last published the queued attempt again."
    )
    approval_requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    # The approver's word, kept apart from the note of whoever then does the step.
    approval_note = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "order"]
        constraints = [
            # A run executes each step of its version once, in order.
            models.UniqueConstraint(fields=["run", "order"], name="step_run_order_uniq"),
        ]
        indexes = [
            # The reaper: running steps whose worker should long have answered.
            models.Index(fields=["deadline_at"], name="step_run_running_idx", condition=Q(state="running")),
            # The reaper: queued steps no worker has picked up.
            models.Index(
                fields=["enqueued_at"],
                name="step_run_queued_idx",
                condition=Q(state="pending", enqueued_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Run #{self.run_id} step {self.order} ({self.state})"

    # What came back from a request that carried credentials (an http_check with an env: header)
    # may hold more of them than masking can recognise: responders see it, viewers do not.
    PRIVATE_RESULT_KEYS = ("body_excerpt",)

    @property
    def output_private(self) -> bool:
        return bool((self.result or {}).get("private_output"))

    def output_hidden_from(self, user) -> bool:
        return self.output_private and not is_responder(user)

    @classmethod
    def awaits_approval(cls, pk: int) -> bool:
        """Whether step run `pk` still waits for someone's approval (a delayed approval page is
        cancelled once it does not)."""
        return cls.objects.filter(
            pk=pk,
            state=StepState.PENDING,
            approved_at__isnull=True,
            approval_requested_at__isnull=False,
            run__state=RunState.WAITING_APPROVAL,
        ).exists()

    @property
    def waiting_for(self) -> str | None:
        """What a pending current step waits for: "approval", "input", or None."""
        if self.state != StepState.PENDING or self.run.state not in (RunState.WAITING_APPROVAL, RunState.WAITING_INPUT):
            return None
        if self.step.approval_required and self.approved_at is None:
            return "approval" if self.approval_requested_at else None
        return "input" if not self.step.is_automated and self.run.state == RunState.WAITING_INPUT else None

    @property
    def status(self) -> str:
        return self.result.get("status", "") if isinstance(self.result, dict) else ""

    @property
    def command(self) -> str:
        """The step's command as a person copies it in this run: the run's values filled in."""
        return parameters.fill_text(self.step.command, self.step.parameters, self.run.params)

    def filled_params(self) -> dict:
        """What the worker runs: the step's params with the run's values (checked again by the action)."""
        return fill(self.step, self.run.params, self.run.target)

    def describe(self) -> str:
        step = self.step
        if not step.is_automated or not step.parameters:
            return step.describe()
        try:
            return f"{step.action} {ACTIONS[step.action].describe(self.filled_params())}"
        except BadParameters:
            return step.describe()

    def _move(self, state: str) -> None:
        if state not in STEP_TRANSITIONS[self.state]:
            raise InvalidTransition(f"Step {self.order} cannot go from {self.state} to {state}.")
        self.state = state

    def enqueue(self, *, attempt: int, countdown: float = 0) -> None:
        """Queues attempt number `attempt` on the worker once the current transaction commits."""
        publish_step(self.pk, attempt, timeout=self.step.timeout, first_look=self.run.first_look, countdown=countdown)

    # --- verbs for workers and the reaper -------------------------------------------------
    #
    # A worker's step costs two statements to claim (read with everything the step needs, then a
    # conditional UPDATE) and three to record (conditional UPDATE, one timeline entry, the
    # successor's release) in one transaction; the run row is locked only when something must be
    # decided (see RunbookRun.advance).

    @classmethod
    def for_worker(cls):
        """Step runs with what a worker needs in one query: the step and its target, the run and its
        target, and the successor (the step `concurrency` places later) it will release. The run's
        incident, runbook and people load only on the rare paths that use them (a remediation's
        actor, an audit record, a decision under the run lock): joining them made this read cost
        three times as much. Unordered: `first()` would sort on the joined rows."""
        successor = cls.objects.filter(
            run=OuterRef("run"), order=OuterRef("order") + OuterRef("run__concurrency")
        ).order_by()
        return (
            cls.objects.select_related("step__target_service", "run__target")
            .annotate(
                successor_id=Subquery(successor.values("pk")[:1]),
                successor_kind=Subquery(successor.values("step__kind")[:1]),
                successor_safety=Subquery(successor.values("step__safety")[:1]),
                successor_timeout=Subquery(successor.values("step__timeout_seconds")[:1]),
            )
            .order_by()
        )

    @classmethod
    def for_worker_get(cls, step_run_id: int) -> "StepRun | None":
        found = list(cls.for_worker().filter(pk=step_run_id))
        return found[0] if found else None

    @classmethod
    def claim(cls, step_run_id: int, attempt: int, *, worker: str) -> "StepRun | None":
        """Marks the step running for this attempt, or returns None when it must not run (any more)."""
        from runbooks.models.run import RunbookRun

        step_run = cls.for_worker_get(step_run_id)
        if step_run is None or step_run.state != StepState.PENDING or step_run.attempts + 1 != attempt:
            return None
        run = step_run.run
        if run.state in FINISHED_RUN_STATES:
            return None
        now = timezone.now()
        started_at = step_run.started_at or now
        deadline = now + timedelta(seconds=step_run.step.timeout + HARD_LIMIT_MARGIN + REAPER_GRACE)
        # One statement decides: a cancel or another delivery of this attempt makes it match nothing.
        claimed = cls.objects.filter(
            pk=step_run_id,
            state=StepState.PENDING,
            attempts=attempt - 1,
            run__state__in=ACTIVE_RUN_STATES,
            run__cancel_requested_at__isnull=True,
        ).update(
            state=StepState.RUNNING,
            attempts=attempt,
            started_at=started_at,
            deadline_at=deadline,
            worker=worker[:200],
            updated_at=now,
        )
        if not claimed:
            RunbookRun.advance(run.pk)  # a cancel came first: the run stops here
            return None
        if run.state == RunState.QUEUED:
            RunbookRun.objects.filter(pk=run.pk, state=RunState.QUEUED).update(
                state=RunState.RUNNING, started_at=now, updated_at=now
            )
            run.state, run.started_at = RunState.RUNNING, now
        step_run.state, step_run.attempts, step_run.started_at = StepState.RUNNING, attempt, started_at
        step_run.deadline_at, step_run.worker = deadline, worker[:200]
        return step_run

    @classmethod
    def record(cls, step_run: "StepRun | int", attempt: int, outcome) -> bool:
        """Stores what the worker found (the claimed step run, or its id); schedules another
        attempt after a transient error; releases the next step."""
        if not isinstance(step_run, StepRun) or not hasattr(step_run, "successor_id"):
            step_run = cls.for_worker_get(getattr(step_run, "pk", step_run))
            if step_run is None:
                return False
        run = step_run.run
        if outcome.transient and attempt <= settings.RUNBOOK_STEP_RETRIES and run.cancel_requested_at is None:
            return step_run._retry(attempt, outcome)
        history = step_run.output
        output = cap_output(f"{history}\n{outcome.output}".strip() if history else outcome.output)
        summary = f"{StepState(outcome.state).label.lower()}: {outcome.summary}{step_run._what_ran()}"
        if not step_run._end(StepState.RUNNING, outcome.state, output, outcome.result, summary, attempts=attempt):
            return False  # reaped meanwhile, or a duplicate delivery
        duration_ms = outcome.result.get("duration_ms")
        if isinstance(duration_ms, int | float):
            observe_runbook_step(step_run.step.action, duration_ms / 1000)
        return True

    def _end(self, expected: str, state: str, output: str, result: dict, summary: str, **unchanged) -> bool:
        """Moves the step from `expected` to the final `state` unless it moved meanwhile (the
        conditional UPDATE matches nothing), with its one timeline entry, then releases its
        successor. When a decision follows instead (a person's step next, the run's end), the run
        is locked first, in the order the verbs for people lock: run, then step."""
        from runbooks.models.run import RunbookRun

        if state not in STEP_TRANSITIONS[expected]:
            raise InvalidTransition(f"Step {self.order} cannot go from {expected} to {state}.")
        run = self.run
        fast = self.successor_id is not None and (run.first_look or self._successor_runs_by_itself())
        now = timezone.now()
        with transaction.atomic():
            if not fast:
                run = self.run = run._lock()
            done = StepRun.objects.filter(pk=self.pk, state=expected, **unchanged).update(
                state=state, output=output, result=result, finished_at=now, deadline_at=None, updated_at=now
            )
            if not done:
                return False
            self.state, self.output, self.result, self.finished_at, self.deadline_at = state, output, result, now, None
            run._event(f"{run._label(self)} {summary}")
            released = fast and self.release_next(now)
            if not fast:
                run._advance()
        if fast and not released:
            RunbookRun.advance(run.pk)  # released already, or the run was cancelled meanwhile
        return True

    def _retry(self, attempt: int, outcome) -> bool:
        delay = settings.RUNBOOK_STEP_RETRY_BACKOFF * 2 ** (attempt - 1)
        output = cap_output(
            f"{self.output}Attempt {attempt} failed: {outcome.result.get('error')}; retrying in {delay} s.\n"
        )
        now = timezone.now()
        due = now + timedelta(seconds=delay)
        with transaction.atomic():
            done = StepRun.objects.filter(pk=self.pk, state=StepState.RUNNING, attempts=attempt).update(
                state=StepState.PENDING, output=output, enqueued_at=due, deadline_at=None, updated_at=now
            )
            if done:
                self.enqueue(attempt=attempt + 1, countdown=delay)
        return bool(done)

    def _what_ran(self) -> str:
        target = self.step.target_service or self.run.target
        return f" — `{self.describe()}`" + (f" on **{target.slug}**" if target else "")

    def _successor_runs_by_itself(self) -> bool:
        """In a person's run: the next step is automated and needs no approval."""
        approval = self.successor_safety in (Safety.DANGEROUS, Safety.CHANGE)
        return self.successor_kind == StepKind.AUTOMATED and not approval

    def release_next(self, now) -> bool:
        """Queues the successor of this finished step (loaded by `for_worker`): every check of a
        first look, or a person's run's next step that runs by itself. The UPDATE matches nothing
        when it was released already, or the run was cancelled or finished."""
        run = self.run
        released = StepRun.objects.filter(
            pk=self.successor_id,
            state=StepState.PENDING,
            enqueued_at__isnull=True,
            run__state__in=ACTIVE_RUN_STATES,
            run__cancel_requested_at__isnull=True,
        ).update(enqueued_at=now, updated_at=now)
        if released:
            timeout = self.successor_timeout or settings.RUNBOOK_STEP_TIMEOUT
            publish_step(self.successor_id, 1, timeout=timeout, first_look=run.first_look)
        return bool(released)

    @classmethod
    def close(cls, step_run_id: int, *, expected: str, state: str, reason: str, before=None) -> bool:
        """Ends a step the worker will not finish (lost worker, never picked up)."""
        step_run = cls.for_worker_get(step_run_id)
        if step_run is None or step_run.state != expected:
            return False
        field = "deadline_at" if expected == StepState.RUNNING else "enqueued_at"
        moment = getattr(step_run, field)
        if before is not None and (moment is None or moment >= before):
            return False
        output = cap_output(f"{step_run.output}\n{reason}".strip())
        result = {**(step_run.result or {}), "error": reason}
        summary = f"{StepState(state).label.lower()}: {reason}"
        return step_run._end(expected, state, output, result, summary, attempts=step_run.attempts, **{field: moment})

    @classmethod
    def rerun_after_loss(cls, step_run_id: int, *, before) -> bool:
        """A read-only step whose worker was lost mid-step runs once more instead of failing: reading
        again changes nothing. The attempt count moves on, so the lost attempt's message (redelivered
        when the broker notices) is stale."""
        step_run = cls.for_worker_get(step_run_id)
        if step_run is None or step_run.state != StepState.RUNNING or step_run.deadline_at is None:
            return False
        if step_run.deadline_at >= before:
            return False
        lost = step_run.worker or "?"
        note = f"No result from worker {lost} within the step's hard time limit; running it once more (read-only).\n"
        now = timezone.now()
        with transaction.atomic():
            done = cls.objects.filter(
                pk=step_run_id, state=StepState.RUNNING, attempts=step_run.attempts, deadline_at=step_run.deadline_at
            ).update(
                state=StepState.PENDING,
                output=cap_output(f"{step_run.output}{note}"),
                result={**(step_run.result or {}), "lost_worker": lost},
                enqueued_at=now,
                deadline_at=None,
                updated_at=now,
            )
            if not done:
                return False
            run = step_run.run
            run._event(f"{run._label(step_run)}: worker {lost} was lost mid-step; the read-only step runs once more.")
            step_run.enqueue(attempt=step_run.attempts + 1)
        return True

    @classmethod
    def reap(cls, now=None) -> int:
        """Handles steps whose worker died (running past the hard limit): a read-only one runs once
        more, any other fails; publishes again queued steps whose message may be lost; times out
        those no worker picked up; and moves on runs whose worker died between two steps."""
        now = now or timezone.now()
        closed = 0
        lost = cls.objects.filter(state=StepState.RUNNING, deadline_at__lt=now)
        for pk, worker, safety, result in lost.values_list("pk", "worker", "step__safety", "result"):
            if safety == Safety.READ_ONLY and not (result or {}).get("lost_worker"):
                closed += cls.rerun_after_loss(pk, before=now)
                continue
            closed += cls.close(
                pk,
                expected=StepState.RUNNING,
                state=StepState.FAILED,
                before=now,
                reason=(
                    f"No result from worker {worker or '?'} within the step's hard time limit: the worker was "
                    "probably killed or lost. Marked failed by the reaper."
                ),
            )
        queued_before = now - timedelta(seconds=settings.RUNBOOK_STEP_QUEUE_TIMEOUT)
        for pk in cls.objects.filter(state=StepState.PENDING, enqueued_at__lt=queued_before).values_list(
            "pk", flat=True
        ):
            closed += cls.close(
                pk,
                expected=StepState.PENDING,
                state=StepState.TIMED_OUT,
                before=queued_before,
                reason=(
                    f"No worker picked this step up within {settings.RUNBOOK_STEP_QUEUE_TIMEOUT} s; "
                    "is a worker consuming the 'runbooks' and 'first_look' queues?"
                ),
            )
        cls.republish(now)
        stalled_runs(now)
        return closed

    @classmethod
    def republish(cls, now) -> int:
        """Publishes again the queued attempts waiting longer than RUNBOOK_STEP_REPUBLISH_AFTER (at
        most once per that interval each): a message lost between commit and publish, or wiped by a
        broker restart, would otherwise wait for the queue timeout. A duplicate finds the attempt
        claimed already and does nothing."""
        before = now - timedelta(seconds=settings.RUNBOOK_STEP_REPUBLISH_AFTER)
        due = cls.objects.filter(state=StepState.PENDING, enqueued_at__lt=before).filter(
            Q(published_at__isnull=True) | Q(published_at__lt=before)
        )
        count = 0
        for step_run in due.select_related("step", "run"):
            marked = cls.objects.filter(pk=step_run.pk, state=StepState.PENDING, attempts=step_run.attempts).update(
                published_at=now
            )
            if marked:
                logger.warning("step run %s queued since %s: publishing it again", step_run.pk, step_run.enqueued_at)
                step_run.enqueue(attempt=step_run.attempts + 1)
                count += 1
        return count


def stalled_runs(now) -> int:
    """Runs that wait for a worker while no step is running or queued, none having finished for a
    while: their worker died after recording a step and before releasing the next. Decided again."""
    from runbooks.models.run import RunbookRun

    before = now - timedelta(seconds=settings.RUNBOOK_STEP_REPUBLISH_AFTER)
    steps = StepRun.objects.filter(run=OuterRef("pk"))
    busy = (
        Q(state=StepState.RUNNING) | Q(state=StepState.PENDING, enqueued_at__isnull=False) | Q(finished_at__gte=before)
    )
    stalled = RunbookRun.objects.filter(state__in=[RunState.QUEUED, RunState.RUNNING], created_at__lt=before).exclude(
        Exists(steps.filter(busy))
    )
    run_ids = list(stalled.values_list("pk", flat=True)[:500])
    for run_id in run_ids:
        logger.warning("run %s waited for a worker with nothing queued: deciding its next step again", run_id)
        RunbookRun.advance(run_id)
    return len(run_ids)
