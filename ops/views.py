"""The ops console (/ops/, admin only): queues, failed tasks, cache, maintenance switch, retention
and the audit trail. Each card is an htmx partial; its buttons run the same audited actions as the API."""

from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from ops.audit import perform
from ops.models import AuditRecord, FailedTask, MaintenanceSwitch, RetentionRun
from ops.stats import cache_stats
from opsportal.roles import admin_required
from runbooks.actions import ActionError, ParamsError
from runbooks.actions.celery_queues import portal_queues, stats

AUDIT_SHOWN = 20


def _run(request, action: str, params: dict) -> tuple[str, str, int]:
    """(message, error, status) of running `action` for the signed-in admin."""
    try:
        return perform(action, params, by=request.user, via="portal").summary, "", 200
    except ParamsError as exc:
        return "", str(exc), 400
    except ActionError as exc:
        return "", str(exc), 409


@admin_required
@require_GET
def console(request):
    context = {
        "switch": MaintenanceSwitch.current(),
        "failed": FailedTask.objects.waiting()[:50],
        "last_retention": RetentionRun.objects.filter(dry_run=False).first(),
        "audit": AuditRecord.objects.select_related("actor", "incident")[:AUDIT_SHOWN],
    }
    return render(request, "ops/console.html", context)


@admin_required
@require_GET
def queues_card(request):
    return _queues_card(request)


def _queues_card(request, *, message: str = "", error: str = "", status: int = 200):
    from opsportal.connections import Masker
    from runbooks.actions import Target, TransientError

    try:
        data = stats(Target(None, Masker()), portal_queues(), 3.0)
    except TransientError as exc:
        data, error = None, str(exc)
    context = {"data": data, "message": message, "error": error}
    return render(request, "ops/partials/queues.html", context, status=status)


@admin_required
@require_POST
def queue_action(request, queue: str, verb: str):
    action = {"pause": "queue_pause", "resume": "queue_resume"}.get(verb)
    if action is None:
        return _queues_card(request, error=f"Unknown action {verb!r}.", status=400)
    message, error, status = _run(request, action, {"queue": queue})
    return _queues_card(request, message=message, error=error, status=status)


def _failed_card(request, *, message: str = "", error: str = "", status: int = 200):
    context = {"failed": FailedTask.objects.waiting()[:50], "message": message, "error": error}
    return render(request, "ops/partials/failed.html", context, status=status)


@admin_required
@require_POST
def failed_action(request, pk: int, verb: str):
    action = {"requeue": "retry_failed", "remove": "remove_task"}.get(verb)
    if action is None:
        return _failed_card(request, error=f"Unknown action {verb!r}.", status=400)
    message, error, status = _run(request, action, {"ids": [pk]})
    return _failed_card(request, message=message, error=error, status=status)


@admin_required
@require_GET
def cache_card(request):
    return render(request, "ops/partials/cache.html", {"cache": cache_stats()})


@admin_required
@require_POST
def maintenance(request):
    enabled = request.POST.get("enabled")
    if enabled not in ("on", "off"):
        message, error, status = "", "Choose on or off.", 400
    else:
        message, error, status = _run(request, "maintenance_mode", {"enabled": enabled == "on"})
    context = {"switch": MaintenanceSwitch.current(), "message": message, "error": error}
    return render(request, "ops/partials/maintenance.html", context, status=status)


@admin_required
@require_POST
def retention(request):
    message, error, status = _run(request, "retention_run", {"dry_run": request.POST.get("dry_run") == "on"})
    context = {"last_retention": RetentionRun.objects.first(), "message": message, "error": error}
    return render(request, "ops/partials/retention.html", context, status=status)
