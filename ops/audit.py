"""Running an action outside a runbook (the ops API, the console, the schedule) and the audit
trail every change or dangerous action leaves, wherever it runs."""

import logging

from ops.models import AuditRecord
from opsportal.connections import Masker
from runbooks.actions import ACTIONS, ActionError, CheckResult, ParamsError, StepTimeout, Target
from runbooks.choices import Safety

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 30.0


def record(action: str, params: dict, *, ok: bool, result: dict, summary: str, by=None, via: str,
           service=None, incident=None, approved_by=None) -> AuditRecord | None:  # fmt: skip
    """Writes the audit record of a change or dangerous action (read-only ones leave none)."""
    safety = ACTIONS[action].safety_of(params)
    if safety == Safety.READ_ONLY:
        return None
    entry = AuditRecord.objects.create(
        action=action,
        safety=safety,
        actor=by,
        approved_by=approved_by,
        via=via,
        target=service.slug if service is not None else "portal",
        params=params,
        dry_run=bool(params.get("dry_run")),
        ok=ok,
        summary=summary[:500],
        result=result,
        incident=incident,
    )
    logger.info(
        "ops action %s on %s by %s: %s", action, entry.target, by.get_username() if by else "Ops Portal", summary
    )
    return entry


def perform(action: str, params: dict, *, by=None, via: str = "api", service=None, incident=None,
            approved_by=None, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:  # fmt: skip
    """Validates and runs `action` now, in this process, and audits it. ParamsError for bad
    parameters or a service the action cannot act on (nothing ran); ActionError when the action
    could not do its work (audited as failed).
    Run for an incident, a change or dangerous action also leaves a timeline entry there."""
    spec = ACTIONS[action]
    params = spec.validate(dict(params))
    spec.check_target(params, service)
    masker = Masker()
    audit = {"by": by, "via": via, "service": service, "incident": incident, "approved_by": approved_by}
    try:
        check = spec.run(params, Target(service, masker, actor=by), timeout)
    except (ActionError, StepTimeout) as exc:
        message = masker(str(exc))
        entry = record(action, params, ok=False, result={"error": message}, summary=message, **audit)
        _on_timeline(entry, f"failed: {message}")
        raise type(exc)(message) from None
    result = masker.data(check.as_json())
    entry = record(action, params, ok=True, result=result, summary=masker(check.summary), **audit)
    _on_timeline(entry, masker(check.summary))
    return check


def describe(entry: AuditRecord) -> str:
    """`action` on target by someone via somewhere (approved by someone) — the words of a timeline entry."""
    who = entry.actor.get_username() if entry.actor else "Ops Portal"
    dry = " (dry run)" if entry.dry_run else ""
    text = f"Ops action `{entry.action}`{dry} on {entry.target} by {who} via {entry.via}"
    if entry.approved_by:
        text += f", approved by {entry.approved_by.get_username()}"
    return text


def _on_timeline(entry: AuditRecord | None, outcome: str) -> None:
    if entry is None or entry.incident is None:
        return
    from incidents.choices import EventKind
    from incidents.models import TimelineEvent

    body = f"{describe(entry)}: {outcome}"
    TimelineEvent.record(entry.incident, kind=EventKind.ACTION, body=body, author=entry.actor)


__all__ = ["ParamsError", "describe", "perform", "record"]
