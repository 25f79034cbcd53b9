"""The public status page and its problem-report form: no sign-in, nothing internal.

What the public sees: public services with a state derived from the open *public* incidents
that affect them, and public incidents (open, or resolved in the last week) with their public
updates — the communication entries responders wrote on them. Unpublished incidents, notes,
system entries, authors and the reports themselves never appear.
"""

from datetime import timedelta

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
    for service in services:
        service.state = states.get(service.pk, PublicState.OPERATIONAL)
    overall = min((s.state for s in services), key=STATE_ORDER.index, default=PublicState.OPERATIONAL)
    return {
        "services": services,
        "open_incidents": [i for i in incidents if i.is_open],
        "recent_incidents": [i for i in incidents if not i.is_open],
        "overall": overall,
        "all_operational": overall == PublicState.OPERATIONAL,
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


@responder_required
@require_POST
def publish(request, pk: int):
    """Put an incident on the public status page, or take it off."""
    incident = get_object_or_404(Incident, pk=pk)
    form = PublishForm(request.POST)
    form.is_valid()
    public = form.cleaned_data.get("public", False)
    try:
        incident.set_public(by=request.user, public=public)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Shown on the status page." if public else "Removed from the status page.")
    return redirect("incidents:detail", pk=pk)
