"""Runs of a runbook version: a person's run one step at a time, a first look's checks side by side.

Every change a person makes goes through a verb that locks the run row (then the step row) and
calls `_advance`, which decides what the run waits for next: a worker (the next automated step is
queued after commit), a person (a manual step to tick) or an approval. Whoever holds the run lock
sees the latest state and acts on it once.

Workers take a cheaper path (see StepRun, step_run.py): a claim and a result are each one
conditional UPDATE of the step row (state and attempt in its WHERE), so a redelivered or stale
message changes nothing; a finished step then releases its successor (the step `concurrency`
places after it) with another conditional UPDATE. Only what needs a decision (a person's step
next, an approval, a cancel, the run's end) takes the run lock and `_advance`.

The runs live in four modules: this one holds RunbookRun (starting, a person's verbs, `_advance`);
run_plan.py decides at the start what a run executes (which steps, on which target, with which
values, and what a first look leaves out); step_run.py holds StepRun with the verbs of workers and
of the reaper; queueing.py publishes a step's attempt and notes when the broker does not answer.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Prefetch, Q
from django.urls import reverse
from django.utils import timezone

from incidents.choices import EventKind
from incidents.models import Incident, Service, TimelineEvent
from opsportal.errors import Conflict, DomainError, InvalidTransition
from runbooks.approval_pages import page_step_approvers
from runbooks.choices import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    OPEN_STEP_STATES,
    RUN_TRANSITIONS,
    RunState,
    Safety,
    StepKind,
    StepState,
)
from runbooks.metrics import record_runbook_run
from runbooks.models.run_plan import (
    SKIP_REASONS,
    alert_labels,
    all_steps,
    check_params,
    check_target,
    first_look_steps,
    first_look_summary,
    run_values,
)
from runbooks.models.runbook import Runbook, RunbookStep, RunbookVersion
from runbooks.models.step_run import StepRun

logger = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 2000


def _name(user) -> str:
    return user.get_username() if user else "Ops Portal"


class RunbookRunQuerySet(models.QuerySet):
    def active(self):
        return self.filter(state__in=ACTIVE_RUN_STATES)

    def for_list(self):
        return self.select_related("runbook", "version", "incident", "target", "started_by")

    def for_detail(self):
        steps = StepRun.objects.select_related("step", "completed_by", "approved_by").order_by("order")
        return self.for_list().prefetch_related(Prefetch("step_runs", queryset=steps))


class RunbookRun(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(RunbookVersion, on_delete=models.PROTECT, related_name="runs")
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="runbook_runs"
    )
    target = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="runbook_runs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    forced = models.BooleanField(
        default=False, help_text="Started while another run of it was active for the incident."
    )
    first_look = models.BooleanField(
        default=False, help_text="Started by an alert: only the read-only automated steps, before anyone looks."
    )
    step_count = models.PositiveIntegerField(default=0)
    concurrency = models.PositiveSmallIntegerField(
        default=1, help_text="Steps queued at once: 1 for a person's run (in order), more for a first look's checks."
    )
    first_look_skipped = models.JSONField(
        default=list,
        blank=True,
        help_text="A first look's steps that did not run: [{order, title, reason, why, configure}].",
    )
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="Values of the runbook's parameters in this run: given when it started or read from alert labels.",
    )
    summary = models.CharField(max_length=500, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RunbookRunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One active run of a runbook per incident, unless someone deliberately forces a second.
            models.UniqueConstraint(
                fields=["runbook", "incident"],
                condition=Q(state__in=ACTIVE_RUN_STATES, forced=False, first_look=False, incident__isnull=False),
                name="run_one_active_per_incident",
            ),
        ]
        indexes = [
            # The incident page lists the runs of one incident, newest first.
            models.Index(fields=["incident", "-id"], name="run_incident_idx"),
        ]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.runbook}"

    def get_absolute_url(self) -> str:
        return reverse("runbooks:run", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    # --- starting -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        runbook: Runbook,
        *,
        by,
        incident=None,
        target=None,
        force: bool = False,
        first_look: str = "",
        params: dict | None = None,
    ) -> "RunbookRun":
        """Creates the run and its steps, records it on the incident and queues or awaits the first step.

        `params` are values for the runbook's parameters; those not given are read from the incident's
        alert labels of the same name. An automated step still missing one refuses the start (400).
        With `first_look` (the name of the alert that opened the incident) only the read-only
        automated steps that the target can serve and whose parameters the alert's labels fill run,
        without anyone having asked; the others are left out, and the timeline says so."""
        with transaction.atomic():
            runbook = (
                Runbook.objects.select_for_update(of=("self",)).select_related("current_version").get(pk=runbook.pk)
            )
            version = runbook.current_version
            if version is None:
                raise DomainError(f"{runbook.title} has no published version to run.")
            steps = list(version.steps.select_related("target_service").order_by("order"))
            total = len(steps)
            skipped = []
            if first_look:
                labels = alert_labels(incident, first_look)
                steps, target, skipped = first_look_steps(runbook, steps, incident, target, labels)
                values = {n: v for n, v in labels.items() if any(n in s.parameter_names for s in steps)}
            else:
                steps, target = all_steps(runbook, steps, incident, target)
                values = run_values(runbook, steps, params or {}, incident)
            check_target(runbook, steps, target, values)
            if not first_look:
                check_params(steps, values, target)
            active = None if first_look else cls._active_run(runbook, incident, force=force)
            run = cls(
                runbook=runbook,
                version=version,
                incident=incident,
                target=target,
                started_by=by,
                forced=active is not None,
                first_look=bool(first_look),
                concurrency=settings.RUNBOOK_FIRST_LOOK_CONCURRENCY if first_look else 1,
                step_count=len(steps),
                first_look_skipped=skipped,
                params=values,
            )
            try:
                with transaction.atomic():
                    run.save()
            except IntegrityError:
                raise Conflict(f"Another run of {runbook.title} was just started for this incident.") from None
            StepRun.objects.bulk_create([StepRun(run=run, step=step, order=n) for n, step in enumerate(steps, start=1)])
            if first_look:
                run._event_first_look(first_look, total)
            else:
                run._event_started(steps, by=by)
            run._advance()
        return run

    @classmethod
    def _active_run(cls, runbook: Runbook, incident, *, force: bool) -> "RunbookRun | None":
        """The run of this runbook still active for the incident, which only `force` lets a second one join."""
        if incident is None:
            return None
        active = cls.objects.active().filter(runbook=runbook, incident=incident, first_look=False).first()
        if active is not None and not force:
            raise Conflict(
                f"Run #{active.pk} of {runbook.title} is still {active.get_state_display().lower()} for "
                f"{incident.reference}; open it, or start another one with force.",
                run=active.pk,
            )
        return active

    @property
    def first_look_total(self) -> int:
        return self.step_count + len(self.first_look_skipped)

    @property
    def first_look_skips(self) -> list[dict]:
        """The skipped steps with their reason in words, for the incident page."""
        return [{**item, "reason_text": SKIP_REASONS.get(item["reason"], "")} for item in self.first_look_skipped]

    def _event_first_look(self, alertname: str, total: int) -> None:
        self._event(
            f"First look for alert `{alertname}`: runbook **{self.runbook.title}** v{self.version.number} runs "
            f"{self.step_count} of its {total} steps{self._on_target()}{self._with_params()}. {self._link()}"
            f"{first_look_summary(self.first_look_skipped)}"
        )

    def _event_started(self, steps: list[RunbookStep], *, by) -> None:
        automated = sum(s.is_automated for s in steps)
        dangerous = sum(s.safety == Safety.DANGEROUS for s in steps)
        self._event(
            f"Runbook **{self.runbook.title}** v{self.version.number} started by {_name(by)}: {self.step_count} "
            f"steps ({automated} automated, {dangerous} dangerous){self._on_target()}{self._with_params()}. "
            f"{self._link()}",
            author=by,
        )

    def _on_target(self) -> str:
        return f", target **{self.target.slug}**" if self.target else ""

    def _with_params(self) -> str:
        return ", with " + ", ".join(f"{k} `{v}`" for k, v in sorted(self.params.items())) if self.params else ""

    def _link(self) -> str:
        return f"[Run #{self.pk}]({self.get_absolute_url()})"

    # --- verbs for people -----------------------------------------------------------------

    def complete_step(self, step_run_id: int, *, by, note: str = "", skip: bool = False) -> "StepRun":
        """A person ticks (or skips) the current manual step."""
        with transaction.atomic():
            run, step_run = self._lock_current(step_run_id)
            step = step_run.step
            if step.is_automated:
                raise Conflict(f"Step {step_run.order} runs on a worker; it cannot be ticked by hand.")
            if step.approval_required and step_run.approved_at is None:
                raise Conflict(
                    f"Step {step_run.order} is dangerous: someone other than {_name(run.started_by)} "
                    "must approve it first."
                )
            step_run._move(StepState.SKIPPED if skip else StepState.SUCCEEDED)
            step_run.completed_by, step_run.note = by, _note(note)
            step_run.finished_at = timezone.now()
            step_run.save()
            verb = "skipped" if skip else "done"
            run._event(f"{run._label(step_run)} {verb} by {_name(by)}{_quote(note)}", author=by)
            run._advance()
        return step_run

    def approve_step(self, step_run_id: int, *, by, note: str = "") -> "StepRun":
        with transaction.atomic():
            run, step_run = self._lock_current(step_run_id)
            step = step_run.step
            if not step.approval_required:
                raise Conflict(f"Step {step_run.order} does not need approval.")
            if step_run.approved_at is not None:
                raise Conflict(f"Step {step_run.order} was already approved by {_name(step_run.approved_by)}.")
            if step.safety == Safety.DANGEROUS and run.started_by_id is not None and by.pk == run.started_by_id:
                raise PermissionDenied(
                    f"You started this run, so you cannot approve its dangerous step {step_run.order}: "
                    "another responder has to."
                )
            step_run.approved_by, step_run.approved_at, step_run.approval_note = by, timezone.now(), _note(note)
            step_run.save()
            what = "approved" if step.safety == Safety.DANGEROUS else "confirmed"
            run._event(f"{run._label(step_run)} {what} by {_name(by)}{_quote(note)}", author=by)
            run._advance()
        return step_run

    def reject_step(self, step_run_id: int, *, by, note: str = "") -> "StepRun":
        """Refuses a step awaiting approval: it is skipped and the run goes on with the next one."""
        with transaction.atomic():
            run, step_run = self._lock_current(step_run_id)
            if not step_run.step.approval_required or step_run.approved_at is not None:
                raise Conflict(f"Step {step_run.order} is not waiting for approval.")
            step_run._move(StepState.SKIPPED)
            step_run.completed_by, step_run.note = by, _note(note)
            step_run.finished_at = timezone.now()
            step_run.result = {"rejected_by": _name(by)}
            step_run.save()
            run._event(f"{run._label(step_run)} rejected by {_name(by)}{_quote(note)}; skipped", author=by)
            run._advance()
        return step_run

    def cancel(self, *, by) -> "RunbookRun":
        """Stops the run before its next step; a step already running on a worker is left to finish."""
        with transaction.atomic():
            run = self._lock()
            if run.state in FINISHED_RUN_STATES:
                raise Conflict(f"Run #{run.pk} is already {run.get_state_display().lower()}.")
            if run.cancel_requested_at is not None:
                raise Conflict(f"Cancelling run #{run.pk} was already requested by {_name(run.cancel_requested_by)}.")
            run.cancel_requested_at, run.cancel_requested_by = timezone.now(), by
            run.save(update_fields=["cancel_requested_at", "cancel_requested_by", "updated_at"])
            running = list(run.step_runs.select_related("step").filter(state=StepState.RUNNING).order_by("order"))
            if running:
                what = run._label(running[0]) if len(running) == 1 else f"the {len(running)} running steps"
                run._event(f"Cancel requested by {_name(by)}: the run stops after {what}.", author=by)
            run._advance()
        self.refresh_from_db()
        return self

    # --- internals ------------------------------------------------------------------------

    def _lock(self) -> "RunbookRun":
        return (
            type(self)
            .objects.select_for_update(of=("self",))
            .select_related("incident", "runbook", "started_by")
            .get(pk=self.pk)
        )

    def _lock_current(self, step_run_id: int) -> tuple["RunbookRun", "StepRun"]:
        run = self._lock()
        try:
            step_run = (
                StepRun.objects.select_for_update(of=("self",))
                .select_related("step", "completed_by", "approved_by")
                .get(pk=step_run_id, run=run)
            )
        except StepRun.DoesNotExist:
            raise DomainError(f"Run #{run.pk} has no step {step_run_id}.") from None
        if run.state in FINISHED_RUN_STATES:
            raise Conflict(f"Run #{run.pk} is already {run.get_state_display().lower()}.")
        if step_run.state != StepState.PENDING:
            done = "done" if step_run.state == StepState.SUCCEEDED else step_run.get_state_display().lower()
            who = f" by {_name(step_run.completed_by)}" if step_run.completed_by else ""
            raise Conflict(f"Step {step_run.order} is already {done}{who}.")
        current = run._current()
        if current is not None and current.pk != step_run.pk:
            raise Conflict(f"Step {step_run.order} is not the current step; step {current.order} comes first.")
        return run, step_run

    def _current(self) -> "StepRun | None":
        return self.step_runs.select_related("step").filter(state__in=OPEN_STEP_STATES).order_by("order").first()

    def _label(self, step_run: "StepRun") -> str:
        return f"Step {step_run.order}/{self.step_count} **{step_run.step.title}**"

    def _event(self, body: str, *, author=None) -> None:
        if self.incident_id:
            # The id is enough to write the entry: a worker's read does not load the incident.
            incident = self.incident if RunbookRun.incident.is_cached(self) else Incident(pk=self.incident_id)
            TimelineEvent.record(incident, kind=EventKind.RUNBOOK, body=body[:19_000], author=author)

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        if state not in RUN_TRANSITIONS[self.state]:
            raise InvalidTransition(f"Run #{self.pk} cannot go from {self.state} to {state}.")
        self.state = state
        self.save(update_fields=["state", "started_at", "updated_at"])

    @classmethod
    def advance(cls, run_id: int) -> None:
        """Locks the run and decides what it waits for next: a worker's way back after a step that
        could not simply release its successor (a person's step next, a cancel, the end)."""
        with transaction.atomic():
            cls(pk=run_id)._lock()._advance()

    def _advance(self) -> None:
        """Decides what the locked run waits for next; call in the transaction that changed it."""
        if self.state in FINISHED_RUN_STATES:
            return
        if self.cancel_requested_at is not None:
            self._stop()
            return
        if self.first_look:
            self._advance_checks()
            return
        current = self._current()
        if current is not None and current.state == StepState.RUNNING:
            return
        if current is None:
            self._finish()
            return
        step = current.step
        if step.approval_required and current.approved_at is None:
            if current.approval_requested_at is None:
                current.approval_requested_at = timezone.now()
                current.save(update_fields=["approval_requested_at", "updated_at"])
                who = "another responder" if step.safety == Safety.DANGEROUS else "a responder"
                why = "is dangerous" if step.safety == Safety.DANGEROUS else "changes state"
                self._event(f"{self._label(current)} {why} and waits for approval by {who}.")
                if step.safety == Safety.DANGEROUS:
                    page_step_approvers(self, current)
            self._set_state(RunState.WAITING_APPROVAL)
            return
        if step.kind == StepKind.MANUAL:
            self._set_state(RunState.WAITING_INPUT)
            return
        if current.enqueued_at is None:
            current.enqueued_at = timezone.now()
            current.save(update_fields=["enqueued_at", "updated_at"])
            current.run = self
            current.enqueue(attempt=current.attempts + 1)
        # Queued until a worker first starts a step; once under way the run stays "running".
        self._set_state(RunState.QUEUED if self.state == RunState.QUEUED else RunState.RUNNING)

    def _advance_checks(self) -> None:
        """A first look: its read-only checks are independent, so up to `concurrency` of them are
        queued at once (the rest are released one by one as those finish, see StepRun.release_next);
        once none is open the run is finished. Here, under the run lock, the queue is topped up."""
        open_steps = list(self.step_runs.select_related("step").filter(state__in=OPEN_STEP_STATES).order_by("order"))
        if not open_steps:
            self._finish()
            return
        in_flight = sum(s.state == StepState.RUNNING or s.enqueued_at is not None for s in open_steps)
        waiting = [s for s in open_steps if s.state == StepState.PENDING and s.enqueued_at is None]
        release = waiting[: max(self.concurrency - in_flight, 0)]
        now = timezone.now()
        StepRun.objects.filter(pk__in=[s.pk for s in release]).update(enqueued_at=now, updated_at=now)
        for step_run in release:
            step_run.run = self
            step_run.enqueue(attempt=step_run.attempts + 1)

    def _stop(self) -> None:
        """A cancel: steps not started are cancelled at once; the run ends when none is running
        (a running step finishes and its result is recorded; then its worker comes back here)."""
        now = timezone.now()
        self.step_runs.filter(state=StepState.PENDING).update(
            state=StepState.CANCELLED, finished_at=now, updated_at=now
        )
        if not self.step_runs.filter(state=StepState.RUNNING).exists():
            self._finish(RunState.CANCELLED, by=self.cancel_requested_by)

    def _finish(self, state: str | None = None, *, by=None) -> None:
        findings = Count("id", filter=Q(result__status__in=["warning", "critical"]))
        rows = self.step_runs.values_list("state").annotate(n=Count("id"), findings=findings).order_by()
        counts = {s: n for s, n, _ in rows}
        found = sum(f for _, _, f in rows)
        if state is None:
            state = (
                RunState.FAILED
                if counts.get(StepState.FAILED)
                else RunState.TIMED_OUT
                if counts.get(StepState.TIMED_OUT)
                else RunState.SUCCEEDED
            )
        if state not in RUN_TRANSITIONS[self.state]:
            raise InvalidTransition(f"Run #{self.pk} cannot go from {self.state} to {state}.")
        parts = [f"{n} {StepState(s).label.lower()}" for s, n in sorted(counts.items()) if n]
        self.summary = ", ".join(parts) + (f"; {found} finding{'s' if found != 1 else ''} to look at" if found else "")
        self.state, self.finished_at = state, timezone.now()
        self.save(update_fields=["summary", "state", "finished_at", "updated_at"])
        record_runbook_run(state)
        verb = f"cancelled by {_name(by)}" if state == RunState.CANCELLED else RunState(state).label.lower()
        self._event(
            f"Runbook **{self.runbook.title}** [run #{self.pk}]({self.get_absolute_url()}) {verb}: {self.summary}."
        )


def _note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise DomainError(f"The note is longer than {NOTE_MAX_LENGTH} characters.")
    return note


def _quote(note: str) -> str:
    note = (note or "").strip()
    return f": {note}" if note else ""
