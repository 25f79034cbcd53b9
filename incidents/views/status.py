"""The public status page and its problem-report form: no sign-in, nothing internal.

What the public sees: public services with a state derived from the open *public* incidents
that affect them, and public incidents (open, or resolved in the last week) with their public
updates — the communication entries responders wrote on them. Unpublished incidents, notes,
system entries, authors and the reports themselves never appear.
"""

from datetime import date, datetime, time, timedelta

from django.contrib import messages
from django.db.models import Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from incidents.choices import OPEN_STATUSES, SEVERITY_PUBLIC_STATE, EventKind, EventSource, PublicState, Status
from incidents.forms import ProblemReportForm, PublishForm
from incidents.models import Incident, ProblemReport, Service, TimelineEvent
from incidents.models.report import (
    REPORT_MAX_BODY_BYTES,
    body_too_large,
    record_received,
    record_rejected,
    record_throttled,
)
from opsportal import metrics
from opsportal.errors import DomainError
from opsportal.roles import responder_required
from opsportal.throttles import CacheUnavailable, lead_throttle_wait

RECENT = timedelta(days=7)
HISTORY_DAYS = 90
PUBLIC_STATUS = {
    Status.TRIGGERED: "Investigating",
    Status.ACKNOWLEDGED: "Investigating",
    Status.INVESTIGATING: "Investigating",
    Status.MITIGATED: "Monitoring",
    Status.RESOLVED: "Resolved",
    Status.CLOSED: "Resolved",
}
STATE_ORDER = list(PublicState)  # worst first


def _incident_state(incident: Incident) -> PublicState:
    if incident.status == Status.MITIGATED:
        return PublicState.MONITORING
    return SEVERITY_PUBLIC_STATE[incident.severity]


def status_context() -> dict:
    since = timezone.now() - RECENT
    public_services = Service.objects.filter(public=True).order_by("name")
    updates = (
        TimelineEvent.objects.visible()
        .filter(kind=EventKind.COMMUNICATION, source=EventSource.MANUAL)
        .order_by("-occurred_at", "-id")
    )
    incidents = list(
        Incident.objects.filter(public=True)
        .filter(Q(status__in=OPEN_STATUSES) | Q(resolved_at__gte=since) | Q(closed_at__gte=since))
        .prefetch_related(
            Prefetch("services", queryset=public_services, to_attr="public_services"),
            Prefetch("events", queryset=updates, to_attr="public_updates"),
        )
        .order_by("-detected_at")
    )
    states: dict[int, PublicState] = {}
    for incident in incidents:
        incident.public_status = PUBLIC_STATUS[incident.status]
        if not incident.is_open:
            continue
        state = _incident_state(incident)
        incident.public_state = state
        for service in incident.public_services:
            current = states.get(service.pk, PublicState.OPERATIONAL)
            states[service.pk] = min(current, state, key=STATE_ORDER.index)
    services = list(public_services)
    history = _history(public_services)
    for service in services:
        service.state = states.get(service.pk, PublicState.OPERATIONAL)
        service.history = history[service.pk]
        service.days_with_incidents = sum(day["state"] != PublicState.OPERATIONAL for day in service.history)
    overall = min((s.state for s in services), key=STATE_ORDER.index, default=PublicState.OPERATIONAL)
    return {
        "services": services,
        "open_incidents": [i for i in incidents if i.is_open],
        "recent_incidents": [i for i in incidents if not i.is_open],
        "overall": overall,
        "all_operational": overall == PublicState.OPERATIONAL,
    }


def _history(public_services) -> dict[int, list[dict]]:
    """Per public service, the last HISTORY_DAYS days (oldest first) with the worst state a public
    incident put it in that day. One query for the incidents and one for their services."""
    today = timezone.localdate()
    first = today - timedelta(days=HISTORY_DAYS - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))
    incidents = (
        Incident.objects.filter(public=True, detected_at__lt=timezone.now())
        .filter(Q(status__in=OPEN_STATUSES) | Q(resolved_at__gte=since) | Q(closed_at__gte=since))
        .prefetch_related(Prefetch("services", queryset=public_services, to_attr="public_services"))
    )
    worst: dict[tuple[int, date], PublicState] = {}
    for incident in incidents:
        start = max(timezone.localdate(incident.started_at), first)
        end = timezone.localdate(incident.resolved_at or incident.closed_at or timezone.now())
        state = SEVERITY_PUBLIC_STATE[incident.severity]
        for offset in range((end - start).days + 1):
            day = start + timedelta(days=offset)
            for service in incident.public_services:
                key = (service.pk, day)
                worst[key] = min(worst.get(key, PublicState.OPERATIONAL), state, key=STATE_ORDER.index)
    days = [first + timedelta(days=n) for n in range(HISTORY_DAYS)]
    return {
        service.pk: [{"day": d, "state": worst.get((service.pk, d), PublicState.OPERATIONAL)} for d in days]
        for service in public_services
    }


def _page(request, form=None, *, status: int = 200, refusal: str = "") -> HttpResponse:
    context = status_context()
    context.update(form=form or ProblemReportForm(), refusal=refusal)
    return render(request, "incidents/status.html", context, status=status)


@require_GET
def status_page(request):
    return _page(request)


@require_POST
def submit_report(request):
    metrics.public_leads_requests_total.inc()
    try:
        wait = lead_throttle_wait(request)
    except CacheUnavailable:
        record_rejected("unavailable")
        response = _page(request, status=503, refusal="Reports cannot be accepted right now; try again in a minute.")
        response["Retry-After"] = "60"
        return response
    if wait is not None:
        record_throttled(wait)
        seconds = max(int(wait), 1)
        response = _page(
            request, status=429, refusal=f"You sent several reports in a short time. Try again in {seconds} seconds."
        )
        response["Retry-After"] = str(seconds)
        return response
    if body_too_large(request):
        record_rejected("too_large")
        refusal = f"A report must be smaller than {REPORT_MAX_BODY_BYTES // 1024} KiB."
        return _page(request, status=413, refusal=refusal)
    form = ProblemReportForm(request.POST)
    if not form.is_valid():
        record_rejected("honeypot" if form.honeypot_filled else "invalid")
        return _page(request, form, status=400)
    data = dict(form.cleaned_data)
    data.pop("website")
    report = ProblemReport.submit(**data)
    record_received(report)
    messages.success(request, f"Thank you: your report {report.reference} reached the on-call team.")
    return redirect("status")


def _publish_form(request, incident: Incident) -> PublishForm:
    return PublishForm(request.POST, auto_id="publish-%s")


@responder_required
@require_POST
def publish(request, pk: int):
    """Put an incident on the public status page under its public title, change that text, or take it off."""
    incident = get_object_or_404(Incident, pk=pk)
    form = _publish_form(request, incident)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
        messages.error(request, f"Not published: {errors}")
        return redirect("incidents:detail", pk=pk)
    data = form.cleaned_data
    public = data["public"]
    try:
        if public:
            incident.set_public(
                by=request.user, public=True, public_title=data["public_title"], public_message=data["public_message"]
            )
        else:
            incident.set_public(by=request.user, public=False)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Shown on the status page." if public else "Removed from the status page.")
    return redirect("incidents:detail", pk=pk)


@responder_required
@require_POST
def preview(request, pk: int):
    """What customers would see, before anything is published (nothing is saved)."""
    incident = get_object_or_404(Incident.objects.prefetch_related("services"), pk=pk)
    form = _publish_form(request, incident)
    if not form.is_valid():
        return render(
            request, "incidents/partials/public_preview.html", {"incident": incident, "form": form}, status=400
        )
    incident.public_title = form.cleaned_data["public_title"].strip() or incident.default_public_title
    incident.public_message = form.cleaned_data["public_message"].strip()
    incident.public_status = PUBLIC_STATUS[incident.status]
    incident.public_state = _incident_state(incident)
    updates = list(
        incident.events.visible()
        .filter(kind=EventKind.COMMUNICATION, source=EventSource.MANUAL)
        .order_by("-occurred_at", "-id")
    )
    incident.public_updates = updates
    incident.public_services = incident.customer_facing_services
    return render(request, "incidents/partials/public_preview.html", {"incident": incident, "form": form})
