"""What a run executes, decided when it starts (RunbookRun.start): a person's run takes every step
and checks that the target and the values fit them all; a first look takes the read-only automated
steps that a target can serve and the alert's labels can fill, and says why it left out the others
(`first_look_summary`, on the incident's timeline).

Values come from the person starting the run and from the labels of the incident's alerts
(`alert_labels`); `fill` puts them into a step's parameters, for the checks here and for the worker
(StepRun.filled_params).
"""

import re

from django.urls import reverse

from incidents.models import Service
from opsportal.errors import BadParameters, DomainError
from runbooks import parameters
from runbooks.actions import ACTIONS
from runbooks.actions.base import PORTAL_SERVICE, SETTING_LABELS
from runbooks.choices import Safety
from runbooks.models.runbook import Runbook, RunbookStep


def all_steps(
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


def first_look_steps(
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
            ACTIONS[step.action].validate(fill(step, labels, target))
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


def fill(step: RunbookStep, values: dict, target: Service | None) -> dict:
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


def run_values(runbook: Runbook, steps: list[RunbookStep], given: dict, incident) -> dict[str, str]:
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


def check_params(steps: list[RunbookStep], values: dict, target: Service | None) -> None:
    """A person's run starts only when every automated step can be filled and its action accepts the
    result (the SQL guard judges the statement with its values in)."""
    missing: dict[str, list[int]] = {}
    for step in steps:
        if not step.is_automated or not step.parameters:
            continue
        try:
            ACTIONS[step.action].validate(fill(step, values, target))
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


def check_target(runbook: Runbook, steps: list[RunbookStep], target: Service | None, values: dict) -> None:
    problems = [
        f"step {s.order} ({s.action}): {p.rstrip('.')}" for s in steps if (p := _refusal(runbook, s, target, values))
    ]
    if problems:
        raise DomainError("Choose a target that can run these steps: " + "; ".join(problems) + ".")
