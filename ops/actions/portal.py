"""The portal's own data: the retention sweep and maintenance mode. They act on the portal
wherever the worker runs, so they take no target."""

from ops import retention
from ops.models import MaintenanceSwitch
from runbooks.actions.base import Action, CheckResult, ParamsError, Target, flag, only
from runbooks.choices import CheckStatus, Safety


def _validate_retention(params: dict) -> dict:
    only(params, {"dry_run"})
    return {"dry_run": flag(params, "dry_run")}


def _retention(params: dict, target: Target, timeout: float) -> CheckResult:
    record = retention.run(dry_run=params["dry_run"], by=target.actor)
    parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in record.counts.items())
    verb = "Dry run: would remove" if record.dry_run else "Removed"
    summary = f"{verb} {parts} past {record.retention_days} days in {record.duration_ms:g} ms"
    figures = {**record.counts, "duration_ms": record.duration_ms}
    return CheckResult(
        CheckStatus.OK, summary, figures, summary, {"retention_run": record.pk, "dry_run": record.dry_run}
    )


def _validate_maintenance(params: dict) -> dict:
    only(params, {"enabled", "message", "dry_run"})
    if not isinstance(params.get("enabled"), bool):
        raise ParamsError("enabled must be true (maintenance on) or false (off).")
    message = params.get("message", "")
    if not isinstance(message, str) or len(message) > 300:
        raise ParamsError("message must be text up to 300 characters.")
    return {"enabled": params["enabled"], "message": message, "dry_run": flag(params, "dry_run")}


def _maintenance(params: dict, target: Target, timeout: float) -> CheckResult:
    state = "on" if params["enabled"] else "off"
    if params["dry_run"]:
        current = "on" if MaintenanceSwitch.current().enabled else "off"
        return CheckResult(
            CheckStatus.OK, f"Dry run: maintenance is {current}; would turn it {state}.", data={"dry_run": True}
        )
    _, changed = MaintenanceSwitch.set(params["enabled"], by=target.actor, message=params["message"])
    summary = f"Maintenance mode turned {state}." if changed else f"Maintenance mode was already {state}."
    return CheckResult(CheckStatus.OK, summary, {}, summary, {"enabled": params["enabled"], "changed": changed})


def _describe(params: dict) -> str:
    if "enabled" in params:
        return "on" if params["enabled"] else "off"
    return "dry run" if params.get("dry_run") else ""


ACTIONS = [
    Action(
        "retention_run", "Retention sweep", _retention, _validate_retention, _describe, Safety.CHANGE, portal=True
    ),
    Action(
        "maintenance_mode", "Maintenance mode", _maintenance, _validate_maintenance, _describe, Safety.CHANGE,
        portal=True,
    ),
]  # fmt: skip
