"""Portal pages for incidents. Timeline edits are htmx requests answered with partials."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from incidents import dashboard, live
from incidents.api.filters import IncidentFilter
from incidents.choices import EventKind, Status
from incidents.forms import (
    AnnotationForm,
    DeclareIncidentForm,
    IncidentDetailsForm,
    TimelineEditForm,
    TimelineEntryForm,
    TransitionForm,
)
from incidents.models import Incident, Service, TimelineEvent
from opsportal import inbox
from opsportal.errors import REFUSALS, StaleVersion, status_of
from opsportal.roles import responder_required
from opsportal.sessions import passive

PAGES_SHOWN = 200  # the notification log on the incident page
TIMELINE_WINDOW = 100  # entries per page of the timeline; older ones load on demand


@login_required
@require_GET
def incident_list(request):
    filterset = IncidentFilter(request.GET, queryset=Incident.objects.for_list())
    page = Paginator(filterset.qs, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "incidents/list.html",
        {
            "page": page,
            "filter": filterset,
            "statuses": Status.choices,
            "services": Service.objects.all(),
            "querystring": query.urlencode(),
        },
    )


@responder_required
def declare(request):
    form = DeclareIncidentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        services = data.pop("services")
        if not data.get("started_at"):
            data.pop("started_at")
        incident = Incident.declare(by=request.user, services=services, **data)
        messages.success(request, f"{incident.reference} declared.")
        return redirect("incidents:detail", pk=incident.pk)
    return render(request, "incidents/declare.html", {"form": form}, status=400 if form.errors else 200)


def _selected_kinds(request) -> list[str]:
    return [k for k in request.GET.getlist("kind") if k in EventKind.values]


def _timeline_window(incident: Incident, kinds: list[str], before: TimelineEvent | None = None):
    """The newest TIMELINE_WINDOW entries (older than `before`, if given), oldest first, and how many are older."""
    events = TimelineEvent.objects.for_display().filter(incident=incident)
    if kinds:
        events = events.filter(kind__in=kinds)
    if before is not None:
        events = events.filter(
            Q(occurred_at__lt=before.occurred_at) | Q(occurred_at=before.occurred_at, id__lt=before.pk)
        )
    newest = list(events.order_by("-occurred_at", "-id")[: TIMELINE_WINDOW + 1])
    has_older = len(newest) > TIMELINE_WINDOW
    return newest[:TIMELINE_WINDOW][::-1], has_older


def _kept(request) -> set[str]:
    """Ids of what the reader is using (an open form, typed text): a live refresh leaves them be."""
    return set(request.GET.getlist("keep"))


def _timeline_context(request, incident: Incident) -> dict:
    kinds = _selected_kinds(request)
    events, has_older = _timeline_window(incident, kinds)
    return {
        "keep": _kept(request),
        "incident": incident,
        "events": events,
        "has_older": has_older,
        "kinds": EventKind.choices,
        "selected_kinds": kinds,
        "kind_query": "".join(f"&kind={k}" for k in kinds),
        "entry_form": TimelineEntryForm(auto_id="entry-%s"),
    }


@login_required
@require_GET
def detail(request, pk: int):
    incident = get_object_or_404(Incident.objects.for_detail(), pk=pk)
    context = _timeline_context(request, incident)
    context["details_form"] = _details_form(incident)
    context["alerts"] = list(incident.alerts.all()[:200])
    context["pages"] = list(incident.pages.select_related("user", "rule", "delivery")[:PAGES_SHOWN])
    context["live_token"] = live.encode(live.fingerprints(incident.pk))
    context["live_interval"] = settings.LIVE_POLL_SECONDS
    return render(request, "incidents/detail.html", context)


@passive
@require_GET
def live_poll(request, pk: int):
    """What open incident pages poll: 204 if nothing changed since their token, else the new poller
    and an HX-Trigger naming the changed parts (each part then fetches itself)."""
    if not request.user.is_authenticated:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = redirect_to_login(reverse("incidents:detail", args=[pk]))["Location"]
        return response
    prints = live.fingerprints(pk)
    if prints is None:
        return HttpResponse(status=404)
    parts = live.changed(request.GET.get("since", ""), prints)
    if not parts:
        return HttpResponse(status=204)
    response = render(
        request,
        "incidents/partials/live.html",
        {"incident_pk": pk, "live_token": live.encode(prints), "live_interval": settings.LIVE_POLL_SECONDS},
    )
    response["HX-Trigger"] = json.dumps({f"live:{part}": True for part in parts})
    return response


@login_required
@require_GET
def header(request, pk: int):
    """The status, roles and clocks, as a live refresh fetches them."""
    incident = get_object_or_404(Incident.objects.for_detail(), pk=pk)
    context = {"incident": incident, "details_form": _details_form(incident), "keep": _kept(request)}
    return render(request, "incidents/partials/header.html", context)


@login_required
@require_GET
def timeline_entries(request, pk: int):
    """The entries alone (not the add form, which may hold someone's typing)."""
    incident = get_object_or_404(Incident, pk=pk)
    return render(request, "incidents/partials/timeline_list.html", _timeline_context(request, incident))


@login_required
@require_GET
def alerts(request, pk: int):
    incident = get_object_or_404(Incident, pk=pk)
    alerts = list(incident.alerts.all()[:200])
    return render(request, "incidents/partials/alerts.html", {"incident": incident, "alerts": alerts})


def _details_form(incident: Incident) -> IncidentDetailsForm:
    return IncidentDetailsForm(
        auto_id="details-%s",
        initial={
            "severity": incident.severity,
            "commander": incident.commander_id,
            "scribe": incident.scribe_id,
            "communications_lead": incident.communications_lead_id,
            "services": [s.pk for s in incident.services.all()],
            "started_at": timezone.localtime(incident.started_at).replace(second=0, microsecond=0),
        },
    )


def _refreshed_header(request, incident_pk: int, *, error: str = "", status: int = 200, form=None):
    """The status/roles panel plus an out-of-band refresh of the timeline (a system entry was added)."""
    incident = Incident.objects.for_detail().get(pk=incident_pk)
    context = _timeline_context(request, incident)
    context.update(details_form=form or _details_form(incident), error=error, oob_timeline=True)
    return render(request, "incidents/partials/header.html", context, status=status)


@login_required
@require_GET
def timeline(request, pk: int):
    incident = get_object_or_404(Incident, pk=pk)
    return render(request, "incidents/partials/timeline.html", _timeline_context(request, incident))


@login_required
@require_GET
def timeline_earlier(request, pk: int):
    """The next older window of entries, swapped in place of the "Show earlier entries" row."""
    incident = get_object_or_404(Incident, pk=pk)
    try:
        before = TimelineEvent.objects.get(incident=incident, pk=int(request.GET.get("before", "")))
    except (ValueError, TimelineEvent.DoesNotExist):
        return HttpResponseBadRequest("before must be the id of an entry of this incident.")
    kinds = _selected_kinds(request)
    events, has_older = _timeline_window(incident, kinds, before=before)
    context = {
        "incident": incident,
        "events": events,
        "has_older": has_older,
        "kind_query": "".join(f"&kind={k}" for k in kinds),
    }
    return render(request, "incidents/partials/timeline_entries.html", context)


@responder_required
@require_POST
def transition(request, pk: int):
    incident = get_object_or_404(Incident, pk=pk)
    form = TransitionForm(request.POST)
    if not form.is_valid():
        return _refreshed_header(request, pk, error="Choose a status.", status=400)
    try:
        incident.transition_to(form.cleaned_data["to"], by=request.user, note=form.cleaned_data["note"])
    except REFUSALS as exc:
        return _refreshed_header(request, pk, error=str(exc), status=status_of(exc))
    return _refreshed_header(request, pk)


@responder_required
@require_POST
def update_details(request, pk: int):
    incident = get_object_or_404(Incident, pk=pk)
    form = IncidentDetailsForm(request.POST, auto_id="details-%s")
    if not form.is_valid():
        return _refreshed_header(request, pk, error="Please correct the details below.", status=400, form=form)
    data = dict(form.cleaned_data)
    incident.update_details(by=request.user, services=data.pop("services"), **data)
    return _refreshed_header(request, pk)


@responder_required
@require_POST
def add_entry(request, pk: int):
    incident = get_object_or_404(Incident, pk=pk)
    form = TimelineEntryForm(request.POST, auto_id="entry-%s")
    if form.is_valid():
        TimelineEvent.add_note(
            incident,
            by=request.user,
            body=form.cleaned_data["body"],
            kind=form.cleaned_data["kind"],
            occurred_at=form.cleaned_data["occurred_at"],
            pinned=form.cleaned_data["pinned"],
        )
        context = _timeline_context(request, incident)
        return render(request, "incidents/partials/timeline.html", context)
    context = _timeline_context(request, incident)
    context["entry_form"] = form
    return render(request, "incidents/partials/timeline.html", context, status=400)


def _event(pk: int, event_id: int) -> TimelineEvent:
    return get_object_or_404(TimelineEvent.objects.for_display(), pk=event_id, incident_id=pk)


def _render_event(request, event: TimelineEvent, status: int = 200, **extra):
    event = TimelineEvent.objects.for_display().get(pk=event.pk)
    return render(request, "incidents/partials/event.html", {"event": event, **extra}, status=status)


@login_required
@require_GET
def event_fragment(request, pk: int, event_id: int):
    return _render_event(request, _event(pk, event_id))


@responder_required
def edit_entry(request, pk: int, event_id: int):
    event = _event(pk, event_id)
    form_class = AnnotationForm if event.is_system else TimelineEditForm
    auto_id = f"event-{event.pk}-%s"  # one page holds many forms: ids stay unique
    if request.method == "GET":
        if event.is_system:
            initial = {"annotation_version": event.annotation_version, "annotation": event.annotation}
        else:
            initial = {
                "version": event.version,
                "body": event.body,
                "kind": event.kind,
                "occurred_at": timezone.localtime(event.occurred_at),
            }
        return _render_event(request, event, form=form_class(initial=initial, auto_id=auto_id), editing=True)
    form = form_class(request.POST, auto_id=auto_id)
    if not form.is_valid():
        return _render_event(request, event, status=400, form=form, editing=True)
    data = dict(form.cleaned_data)
    try:
        with transaction.atomic():
            if event.is_system:
                event.annotate(by=request.user, **data)
            else:
                event.edit(by=request.user, **data)
    except StaleVersion as exc:
        event.refresh_from_db()
        # Show the other person's text beside ours; the form now carries their version.
        mine = data.get("annotation") if event.is_system else data.get("body")
        guard = "annotation_version" if event.is_system else "version"
        fresh = form_class(initial={**data, guard: getattr(event, guard)}, auto_id=auto_id)
        return _render_event(
            request, event, status=status_of(exc), form=fresh, editing=True, conflict=True, my_text=mine
        )
    except REFUSALS as exc:
        return _render_event(request, event, status=status_of(exc), form=form, editing=True, error=str(exc))
    return _render_event(request, event)


@responder_required
@require_POST
def delete_entry(request, pk: int, event_id: int):
    return _apply_verb(request, _event(pk, event_id), "soft_delete")


@responder_required
@require_POST
def restore_entry(request, pk: int, event_id: int):
    return _apply_verb(request, _event(pk, event_id), "restore")


@responder_required
@require_POST
def pin_entry(request, pk: int, event_id: int):
    event = _event(pk, event_id)
    try:
        event.set_pinned(by=request.user, pinned=not event.pinned)
    except REFUSALS as exc:
        return _render_event(request, event, status=status_of(exc), error=str(exc))
    return _render_event(request, event)


def _apply_verb(request, event: TimelineEvent, verb: str):
    try:
        getattr(event, verb)(by=request.user)
    except REFUSALS as exc:
        return _render_event(request, event, status=status_of(exc), error=str(exc))
    return _render_event(request, event)


@login_required
@require_GET
def home(request):
    """The dashboard; htmx polls it and swaps in the sections (one partial each)."""
    template = "incidents/partials/dashboard/sections.html" if request.htmx else "incidents/dashboard.html"
    return render(request, template, {**dashboard.context(), "approvals": inbox.waiting_for(request.user)})


@login_required
@require_GET
def revisions(request, pk: int, event_id: int):
    event = _event(pk, event_id)
    revisions = event.revisions.select_related("edited_by")
    return render(request, "incidents/partials/revisions.html", {"revisions": revisions})
