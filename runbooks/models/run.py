"""Runs of a runbook version: a person's run one step at a time, a first look's checks side by side.

Every change a person makes goes through a verb that locks the run row (then the step row) and
calls `_advance`, which decides what the run waits for next: a worker (the next automated step is
queued after commit), a person (a manual step to tick) or an approval. Whoever holds the run lock
sees the latest state and acts on it once.

Workers take a cheaper path (see StepRun): a claim and a result are each one conditional UPDATE of
the step row (state and attempt in its WHERE), so a redelivered or stale message changes nothing;
a finished step then releases its successor (the step `concurrency` places after it) with another
conditional UPDATE. Only what needs a decision (a person's step next, an approval, a cancel, the
run's end) takes the run lock and `_advance`.
"""

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from incidents.choices import EventKind
from incidents.models import Incident, Service, TimelineEvent
from opsportal import broker
from opsportal.errors import BadParameters, Conflict, DomainError, InvalidTransition
from opsportal.roles import is_responder
from runbooks import parameters
from runbooks.actions import ACTIONS
from runbooks.actions.base import PORTAL_SERVICE, SETTING_LABELS
from runbooks.approval_pages import page_step_approvers
from runbooks.choices import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    OPEN_STEP_STATES,
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    RunState,
    Safety,
    StepKind,
    StepState,
)
from runbooks.metrics import observe_runbook_step, record_runbook_run
from runbooks.models.runbook import Runbook, RunbookStep, RunbookVersion

logger = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 2000
# Seconds the worker's soft and hard time limits add to a step's own timeout, and the reaper's
# grace on top of the hard limit before it declares the worker lost.
SOFT_LIMIT_MARGIN, HARD_LIMIT_MARGIN, REAPER_GRACE = 5, 15, 30


def _name(user) -> str:
    return user.get_username() if user else "Ops Portal"


def cap_output(text: str) -> str:
    limit = settings.RUNBOOK_STEP_OUTPUT_LIMIT
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [output truncated: {len(text) - limit} more characters]"


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
                steps, target, skipped = _first_look_steps(runbook, steps, incident, target, labels)
                values = {n: v for n, v in labels.items() if any(n in s.parameter_names for s in steps)}
            else:
                steps, target = _all_steps(runbook, steps, incident, target)
                values = _values(runbook, steps, params or {}, incident)
            _check_target(runbook, steps, target, values)
            if not first_look:
                _check_params(steps, values, target)
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


def _all_steps(
    runbook: Runbook, steps: list[RunbookStep], incident, target: Service | None
) -> tuple[list[RunbookStep], Service | None]:
    """What a person's run executes: every step, on the chosen target or the one that serves them all."""
    if not steps:
        raise DomainError(f"{runbook.title} has no steps to run.")
    return steps, target or _default_target(runbook, steps, incident)


# Why a first look left a step out, worst news last: what a person can fix is named with a link.
SKIP_REASONS = {
    "manual": "a person does it",
    "placeholders": "its command has placeholders to fill in",
    "not_read_only": "it changes something, so it waits for a person",
    "no_target": "no target service has what it needs",
    "needs_value": "its blanks need values the alert's labels do not give",
}
_PLACEHOLDER = re.compile(r"<[A-Za-z][\w-]*>|\$\{?[A-Z][A-Z0-9_]*\}?")


def _skip(step: RunbookStep, reason: str, why: str = "", configure: str = "") -> dict:
    return {"order": step.order, "title": step.title, "reason": reason, "why": why, "configure": configure}


def _configure_url(runbook: Runbook, target: Service | None) -> str:
    """Where to set the missing connection: the target's admin page, else the runbook's service's."""
    service = target or next(iter(runbook.services.all()), None)
    if service is None:
        return reverse("admin:incidents_service_changelist")
    return reverse("admin:incidents_service_change", args=[service.pk])


def _first_look_steps(
    runbook: Runbook, steps: list[RunbookStep], incident, target: Service | None, labels: dict[str, str]
) -> tuple[list[RunbookStep], Service | None, list[dict]]:
    """What a first look executes with nobody watching: the read-only automated steps, on the target
    serving most of them, less those no service can reach and those with a blank the alert's labels
    do not fill; and every other step with the reason."""
    skipped = []
    checks = []
    for step in steps:
        if not step.is_automated:
            placeholders = _PLACEHOLDER.search(step.command or "")
            skipped.append(_skip(step, "placeholders" if placeholders else "manual"))
        elif step.safety != Safety.READ_ONLY:
            skipped.append(_skip(step, "not_read_only"))
        else:
            checks.append(step)
    if not checks:
        raise DomainError(f"{runbook.title} has no read-only checks to run.", skipped=skipped)
    target = target or _default_target(runbook, checks, incident, partial=True)
    runnable = []
    for step in checks:
        problem = _refusal(runbook, step, target, labels)
        if problem:
            skipped.append(_skip(step, "no_target", problem, _configure_url(runbook, target)))
            continue
        try:
            ACTIONS[step.action].validate(_filled(step, labels, target))
        except BadParameters as exc:
            names = list(getattr(exc, "names", None) or step.parameter_names)
            skipped.append({**_skip(step, "needs_value", ", ".join(names)), "names": names})
        else:
            runnable.append(step)
    skipped.sort(key=lambda s: s["order"])
    if not runnable:
        needed = sorted({n for item in skipped for n in item.get("names", [])})
        if needed and not any(item["reason"] == "no_target" for item in skipped):
            raise DomainError(
                f"every read-only check of {runbook.title} needs a value its alert's labels do not give: "
                f"{', '.join(needed)}.",
                skipped=skipped,
            )
        raise DomainError(f"no read-only check of {runbook.title} can reach a target service.", skipped=skipped)
    return runnable, target, skipped


def first_look_summary(skipped: list[dict]) -> str:
    """Markdown for the timeline: how many steps were left out and why, with where to fix a target."""
    if not skipped:
        return ""
    counts = {}
    for item in skipped:
        counts[item["reason"]] = counts.get(item["reason"], 0) + 1
    parts = [f"{n} because {SKIP_REASONS[reason]}" for reason, n in counts.items()]
    lines = [f"\n\nSkipped {len(skipped)}: {'; '.join(parts)}."]
    waiting = [f"step {i['order']} **{i['title']}** needs {i['why']}" for i in skipped if i["reason"] == "needs_value"]
    if waiting:
        lines.append(f" Left out, for want of a value: {'; '.join(waiting)}.")
    for item in skipped:
        if item["reason"] == "no_target":
            lines.append(
                f"\n- step {item['order']} {item['title']}: {item['why']} [Configure the target]({item['configure']})"
            )
    return "".join(lines)


def _filled(step: RunbookStep, values: dict, target: Service | None) -> dict:
    service = step.target_service or target
    return parameters.fill(step.params, step.parameters, values, base_url=bool(service and service.base_url))


def alert_labels(incident, alertname: str = "") -> dict[str, str]:
    """Parameter values from the labels of the incident's alerts (those named `alertname` when there
    are any): a label whose alerts disagree on its value fills nothing."""
    if incident is None:
        return {}
    alerts = incident.alerts.all()
    if alertname and alerts.filter(alertname=alertname).exists():
        alerts = alerts.filter(alertname=alertname)
    values: dict[str, str] = {}
    ambiguous: set[str] = set()
    for labels in alerts.values_list("labels", flat=True)[:100]:
        for name, value in parameters.from_labels(labels if isinstance(labels, dict) else {}).items():
            if values.setdefault(name, value) != value:
                ambiguous.add(name)
    return {n: v for n, v in values.items() if n not in ambiguous}


def _values(runbook: Runbook, steps: list[RunbookStep], given: dict, incident) -> dict[str, str]:
    """The values of a person's run: those given (each checked), then the incident's alert labels."""
    declared = {p["name"]: p for s in steps for p in s.parameters}
    if not isinstance(given, dict):
        raise BadParameters("params must map parameter names to values.", field="params")
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise parameters.refuse(str(name)[:64], f"{runbook.title} has no such parameter (its parameters: {known}).")
    values = {}
    for name, value in given.items():
        values[name] = parameters.check_value(name, value)
        if declared[name]["context"] == "host":
            values[name] = parameters.check_host(name, value)
    labels = alert_labels(incident)
    return {**{n: v for n, v in labels.items() if n in declared}, **values}


def _check_params(steps: list[RunbookStep], values: dict, target: Service | None) -> None:
    """A person's run starts only when every automated step can be filled and its action accepts the
    result (the SQL guard judges the statement with its values in)."""
    missing: dict[str, list[int]] = {}
    for step in steps:
        if not step.is_automated or not step.parameters:
            continue
        try:
            ACTIONS[step.action].validate(_filled(step, values, target))
        except parameters.MissingParameters as exc:
            for name in exc.names:
                missing.setdefault(name, []).append(step.order)
        except BadParameters as exc:
            names = ", ".join(f"params.{n}" for n in step.parameter_names)
            raise BadParameters(
                f"{names}: step {step.order} ({step.title}) does not accept these values: {exc}",
                field=f"params.{step.parameter_names[0]}",
            ) from None
    if missing:
        raise parameters.MissingParameters(
            "; ".join(
                f"params.{name}: needed by step{'s' if len(orders) > 1 else ''} {', '.join(map(str, orders))}"
                for name, orders in missing.items()
            )
            + ". Give a value when starting the run.",
            list(missing),
        )


def _default_target(runbook: Runbook, steps: list[RunbookStep], incident, *, partial: bool = False) -> Service | None:
    """The runbook's service (preferring the incident's) with every setting the steps need; with
    `partial`, the one serving the most steps (a first look runs what it can)."""
    needed = [s.needs for s in steps if s.is_automated and s.target_service_id is None and s.needs]
    if not needed:
        return None
    services = list(runbook.services.all())
    if incident is not None:
        affected = {s.pk for s in incident.services.all()}
        services.sort(key=lambda s: s.pk not in affected)
    served = [(sum(bool(getattr(s, n)) for n in needed), s) for s in services]
    if partial:
        best = max((n for n, _ in served), default=0)
        return next((s for n, s in served if n == best), None) if best else None
    complete = [s for n, s in served if n == len(needed)]
    if incident is not None and len(complete) > 1:
        complete = [s for s in complete if s.pk in affected] or complete
    return complete[0] if len(complete) == 1 else None


def _refusal(runbook: Runbook, step: RunbookStep, target: Service | None, values: dict | None = None) -> str | None:
    """The one target rule for a step, plus: without a target, a step of a runbook written for other
    services never falls back to the portal's own broker, cache or database. Acting on the portal
    takes choosing it (the ops-portal service), or a runbook that names no service."""
    problem = step.refusal(target, values)
    if problem or target is not None or not step.is_automated or step.target_service_id:
        return problem
    action, setting = ACTIONS[step.action], step.needs
    services = [s.slug for s in runbook.services.all()]
    if not (action.portal and setting and services):
        return None
    label = SETTING_LABELS[setting]
    return (
        f"{step.action} would act on the portal's own {label} but {runbook.title} is for "
        f"{', '.join(services)}: choose a target service with a {label} (or {PORTAL_SERVICE} for the portal)"
    )


def _check_target(runbook: Runbook, steps: list[RunbookStep], target: Service | None, values: dict) -> None:
    problems = [
        f"step {s.order} ({s.action}): {p.rstrip('.')}" for s in steps if (p := _refusal(runbook, s, target, values))
    ]
    if problems:
        raise DomainError("Choose a target that can run these steps: " + "; ".join(problems) + ".")


def _note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise DomainError(f"The note is longer than {NOTE_MAX_LENGTH} characters.")
    return note


def _quote(note: str) -> str:
    note = (note or "").strip()
    return f": {note}" if note else ""


class StepRun(models.Model):
    run = models.ForeignKey(RunbookRun, on_delete=models.CASCADE, related_name="step_runs")
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
        return _filled(self.step, self.run.params, self.run.target)

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
