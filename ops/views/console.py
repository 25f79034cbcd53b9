"""The ops console (/ops/, admin only): queues, failed tasks, cache, maintenance switch, retention,
the daily health check, dangerous actions waiting for approval and the audit trail. Each card is an
htmx partial; its buttons run the same audited actions as the API. Dangerous buttons (purge, remove,
flush, and anything asked for in the approvals card) only ask: another admin approves in the same card."""

import json

from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from incidents.models import Incident, Service
from ops import approvals, health_check
from ops.actions.queues import portal_queues, stats
from ops.audit import perform
from ops.choices import RequestState
from ops.models import ActionRequest, AuditRecord, FailedTask, MaintenanceSwitch, RetentionRun
from ops.models.request import NOT_QUEUED
from ops.stats import cache_stats
from opsportal.errors import REFUSALS, status_of
from opsportal.roles import admin_required

AUDIT_SHOWN = 20
DECIDED_SHOWN = 10
# Tells the approvals card to reload when another card asked for something (hx-trigger ... from:body).
REQUESTS_CHANGED = "ops-requests-changed"


def _outcome(message_of) -> tuple[str, str, int]:
    """(message, error, status) of an action: its message, or why it was refused (the status from opsportal.errors)."""
    try:
        return message_of(), "", 200
    except REFUSALS as exc:
        return "", str(exc), status_of(exc)


def _run(request, action: str, params: dict) -> tuple[str, str, int]:
    """Runs `action` now for the signed-in admin."""
    return _outcome(lambda: perform(action, params, by=request.user, via="portal").summary)


@admin_required
@require_GET
def console(request):
    context = {
        "switch": MaintenanceSwitch.current(),
        "failed": FailedTask.objects.waiting()[:50],
        "last_retention": RetentionRun.objects.filter(dry_run=False).first(),
        "audit": AuditRecord.objects.select_related("actor", "approved_by", "incident")[:AUDIT_SHOWN],
        **_requests_context(request),
        **_health_context(),
    }
    return render(request, "ops/console.html", context)


def _ask(request, action: str, params: dict, *, reason: str, incident=None, service=None) -> tuple[str, str, int]:
    """Asks another admin to approve a dangerous action, for the signed-in admin."""
    return _outcome(
        lambda: (
            approvals.ask(
                action, params, by=request.user, reason=reason, via="portal", incident=incident, service=service
            ).waiting_message
        )
    )


def _reason(request) -> str:
    """The reason typed into the button's prompt (hx-prompt; htmx URI-encodes what a header cannot
    carry, django-htmx decodes it), or a form field."""
    return request.htmx.prompt or request.POST.get("reason", "")


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
    if verb == "purge":
        message, error, status = _ask(request, "purge_queue", {"queue": queue}, reason=_reason(request))
        response = _queues_card(request, message=message, error=error, status=status)
        return _signal_requests(response)
    action = {"pause": "queue_pause", "resume": "queue_resume"}.get(verb)
    if action is None:
        return _queues_card(request, error=f"Unknown action {verb!r}.", status=400)
    message, error, status = _run(request, action, {"queue": queue})
    return _queues_card(request, message=message, error=error, status=status)


def _signal_requests(response):
    if response.status_code == 200:
        response["HX-Trigger"] = REQUESTS_CHANGED
    return response


def _failed_card(request, *, message: str = "", error: str = "", status: int = 200):
    context = {"failed": FailedTask.objects.waiting()[:50], "message": message, "error": error}
    return render(request, "ops/partials/failed.html", context, status=status)


@admin_required
@require_POST
def failed_action(request, pk: int, verb: str):
    if verb == "remove":  # dangerous: asks another admin
        message, error, status = _ask(request, "remove_task", {"ids": [pk]}, reason=_reason(request))
        return _signal_requests(_failed_card(request, message=message, error=error, status=status))
    if verb != "requeue":
        return _failed_card(request, error=f"Unknown action {verb!r}.", status=400)
    message, error, status = _run(request, "retry_failed", {"ids": [pk]})
    return _failed_card(request, message=message, error=error, status=status)


@admin_required
@require_GET
def cache_card(request):
    return render(request, "ops/partials/cache.html", {"cache": cache_stats()})


@admin_required
@require_POST
def cache_flush(request):
    message, error, status = _ask(request, "cache_flush", {}, reason=_reason(request))
    context = {"cache": cache_stats(), "message": message, "error": error}
    return _signal_requests(render(request, "ops/partials/cache.html", context, status=status))


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


def _requests_context(request) -> dict:
    ActionRequest.objects.expire_stale()
    rows = ActionRequest.objects.select_related("requested_by", "decided_by", "incident", "service")
    return {
        "pending": rows.filter(state=RequestState.PENDING).order_by("requested_at"),
        "decided": rows.exclude(state=RequestState.PENDING)[:DECIDED_SHOWN],
        "approvable": approvals.approvable(),
    }


def _requests_card(request, *, message: str = "", error: str = "", status: int = 200, form=None):
    context = {**_requests_context(request), "message": message, "error": error, "form": form or {}}
    return render(request, "ops/partials/requests.html", context, status=status)


@admin_required
@require_GET
def requests_card(request):
    return _requests_card(request)


@admin_required
@require_POST
def ask(request):
    """The approvals card's form: any dangerous action with JSON parameters, a reason and an incident."""
    form = {k: request.POST.get(k, "").strip() for k in ("action", "params", "reason", "incident", "service")}
    try:
        params = json.loads(form["params"] or "{}")
        if not isinstance(params, dict):
            raise ValueError
    except ValueError:
        return _requests_card(request, error='Parameters must be a JSON object, e.g. {"queue": "celery"}.',
                              status=400, form=form)  # fmt: skip
    incident = None
    if form["incident"]:
        number = form["incident"].upper().removeprefix("INC-").lstrip("#")
        incident = Incident.objects.filter(pk=int(number)).first() if number.isdigit() else None
        if incident is None:
            return _requests_card(request, error=f"No incident {form['incident']!r}.", status=400, form=form)
    service = Service.objects.filter(slug=form["service"]).first() if form["service"] else None
    if form["service"] and service is None:
        return _requests_card(request, error=f"No service {form['service']!r}.", status=400, form=form)
    message, error, status = _ask(
        request, form["action"], params, reason=form["reason"], incident=incident, service=service
    )
    return _requests_card(request, message=message, error=error, status=status, form=form if error else None)


@admin_required
@require_POST
def decide(request, pk: int, verb: str):
    verbs = {"approve": approvals.approve, "reject": approvals.reject}
    if verb not in verbs:
        return _requests_card(request, error=f"Unknown decision {verb!r}.", status=400)
    try:
        decided = verbs[verb](pk, by=request.user, note=request.POST.get("note", ""))
    except REFUSALS as exc:  # own request 403, already decided or expired 409, unknown 400
        return _requests_card(request, error=str(exc), status=status_of(exc))
    done = {"approved": "approved: a worker runs it now.", "rejected": "rejected.", "cancelled": "withdrawn."}
    if decided.queued is False:
        done["approved"] = f"approved, but not queued yet: {NOT_QUEUED}"
    return _requests_card(request, message=f"Request #{decided.pk} {done[decided.state]}")


def _health_context() -> dict:
    return {"health_run": health_check.last_run()}


@admin_required
@require_GET
def health_card(request):
    return render(request, "ops/partials/health.html", _health_context())


@admin_required
@require_POST
def health_run(request):
    try:
        run = health_check.start(by=request.user)
    except REFUSALS as exc:
        context = {**_health_context(), "error": str(exc)}
        return render(request, "ops/partials/health.html", context, status=status_of(exc))
    context = {**_health_context(), "message": f"Health check run #{run.pk} started; this card refreshes."}
    return render(request, "ops/partials/health.html", context)
