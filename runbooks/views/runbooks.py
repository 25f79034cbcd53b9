"""Portal pages for runbooks and runs. The run page polls a partial with htmx while the run is active."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from incidents.models import Incident, Service
from opsportal.errors import REFUSALS, status_of
from opsportal.roles import admin_required, is_responder, responder_required, users_who_respond
from runbooks.choices import RunState, Safety, SectionKind
from runbooks.forms import ImportForm, StartRunForm, StepActionForm, runbook_parameters
from runbooks.importer import ImportRefused, import_document
from runbooks.models import Runbook, RunbookDocument, RunbookRun, StepRun
from runbooks.models.runbook import answering_like

RECENT_RUNS = 5


@login_required
@require_GET
def runbook_list(request):
    runbooks = Runbook.objects.published().for_list().order_by("document__title", "category", "title")
    query = request.GET.get("q", "").strip()
    if query:
        # Alert names through their normalised rows: any Unicode, any case, quotes included.
        runbooks = runbooks.filter(
            Q(title__icontains=query) | Q(category__icontains=query) | Q(pk__in=answering_like(query))
        )
    service = request.GET.get("service", "")
    if service:
        runbooks = runbooks.filter(services__slug=service).distinct()
    page = Paginator(runbooks, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "runbooks/list.html",
        {"page": page, "query": query, "service": service, "services": Service.objects.all()},
    )


def _version(runbook: Runbook, request):
    number = request.GET.get("version", "")
    if number.isdigit():
        return get_object_or_404(runbook.versions, number=int(number))
    return runbook.current_version


@login_required
@require_GET
def runbook_detail(request, pk: int):
    runbook = get_object_or_404(Runbook.objects.select_related("document", "current_version"), pk=pk)
    version = _version(runbook, request)
    return render(request, "runbooks/detail.html", _detail_context(request, runbook, version))


def _detail_context(request, runbook: Runbook, version, **extra) -> dict:
    steps = list(version.steps.select_related("target_service").order_by("order")) if version else []
    sections = [
        {**section, "index": n, "steps": [s for s in steps if s.section == n]}
        for n, section in enumerate(version.sections if version else [])
    ]
    initial = {"incident": request.GET.get("incident")} if request.GET.get("incident", "").isdigit() else {}
    return {
        "runbook": runbook,
        "version": version,
        "sections": sections,
        "steps": steps,
        "versions": runbook.versions.select_related("created_by").order_by("-number")[:20],
        "coverage": version.template_coverage() if version else [],
        "runs": runbook.runs.for_list()[:10],
        "run_form": extra.pop("run_form", None) or StartRunForm(initial=initial, parameters=runbook_parameters(steps)),
        "template_kinds": SectionKind,
        **extra,
    }


@admin_required
def import_runbooks(request):
    form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
    reports, errors = [], []
    if request.method == "POST" and form.is_valid():
        services = [s.slug for s in form.cleaned_data["services"]] or None
        for upload in form.cleaned_data["files"]:
            try:
                data = upload.read()
                reports.append(
                    import_document(
                        data, name=upload.name, by=request.user, services=services, owner=form.cleaned_data["owner"]
                    )
                )
            except ImportRefused as exc:
                errors.append(str(exc))
    status = 400 if (form.errors or errors) else 200
    context = {"form": form, "reports": reports, "errors": errors, "documents": RunbookDocument.objects.all()}
    return render(request, "runbooks/import.html", context, status=status)


@responder_required
@require_POST
def start_run(request, pk: int):
    runbook = get_object_or_404(Runbook.objects.select_related("current_version"), pk=pk)
    version = runbook.current_version
    form = StartRunForm(request.POST, parameters=runbook_parameters(version.steps.all()) if version else [])
    from_incident = request.POST.get("from") == "incident"
    error, status = "", 400
    if form.is_valid():
        try:
            run = RunbookRun.start(
                runbook,
                by=request.user,
                incident=form.cleaned_data["incident"],
                target=form.cleaned_data["target"],
                force=form.cleaned_data["force"],
                params=form.params(),
            )
        except REFUSALS as exc:
            error, status = str(exc), status_of(exc)
        else:
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = run.get_absolute_url()
                return response
            return redirect(run)
    else:
        error = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items())
    if from_incident and form.cleaned_data.get("incident") is not None:
        return _incident_card(request, form.cleaned_data["incident"], error=error, status=status)
    context = _detail_context(request, runbook, runbook.current_version, run_form=form, run_error=error)
    return render(request, "runbooks/detail.html", context, status=status)


def _run(pk: int) -> RunbookRun:
    return get_object_or_404(RunbookRun.objects.for_detail(), pk=pk)


def _live_token(run: RunbookRun) -> str:
    stamps = [run.updated_at, *(s.updated_at for s in run.step_runs.all())]
    return str(int(max(stamps).timestamp() * 1_000_000))


APPROVERS_SHOWN = 5


def _approvers(run: RunbookRun, current) -> list[str]:
    """Who can decide the step waiting for approval: any responder, but never the starter of a dangerous one."""
    if current is None or current.waiting_for != "approval":
        return []
    people = users_who_respond()
    if current.step.safety == Safety.DANGEROUS and run.started_by_id:
        people = people.exclude(pk=run.started_by_id)
    names = list(people.values_list("username", flat=True)[: APPROVERS_SHOWN + 1])
    if len(names) > APPROVERS_SHOWN:
        names[APPROVERS_SHOWN:] = ["other responders"]
    return names


def _live_context(request, run: RunbookRun, **extra) -> dict:
    step_runs = list(run.step_runs.all())
    current = next((s for s in step_runs if s.state in ("pending", "running")), None)
    return {
        "run": run,
        "step_runs": step_runs,
        "current": current,
        "approvers": _approvers(run, current),
        "token": _live_token(run),
        "can_approve_dangerous": is_responder(request.user) and request.user.pk != run.started_by_id,
        "hidden_output": {s.pk for s in step_runs if s.output_hidden_from(request.user)},
        **extra,
    }


@login_required
@require_GET
def run_detail(request, pk: int):
    run = _run(pk)
    return render(request, "runbooks/run.html", _live_context(request, run))


@login_required
@require_GET
def run_live(request, pk: int):
    run = _run(pk)
    if request.GET.get("since") == _live_token(run):
        return HttpResponse(status=204)
    return render(request, "runbooks/partials/run_live.html", _live_context(request, run))


def _live_response(request, pk: int, *, error: str = "", status: int = 200):
    run = _run(pk)
    return render(request, "runbooks/partials/run_live.html", _live_context(request, run, error=error), status=status)


@responder_required
@require_POST
def step_action(request, pk: int, step_id: int, verb: str):
    run = get_object_or_404(RunbookRun, pk=pk)
    get_object_or_404(StepRun, pk=step_id, run=run)
    form = StepActionForm(request.POST)
    if not form.is_valid():
        return _live_response(request, pk, error="The note is too long (2000 characters at most).", status=400)
    note = form.cleaned_data["note"]
    try:
        if verb == "complete":
            run.complete_step(step_id, by=request.user, note=note, skip=form.cleaned_data["skip"])
        elif verb == "approve":
            run.approve_step(step_id, by=request.user, note=note)
        else:
            run.reject_step(step_id, by=request.user, note=note)
    except REFUSALS as exc:  # approving one's own dangerous step 403, a step already done 409
        return _live_response(request, pk, error=str(exc), status=status_of(exc))
    return _live_response(request, pk)


@responder_required
@require_POST
def cancel_run(request, pk: int):
    run = get_object_or_404(RunbookRun, pk=pk)
    try:
        run.cancel(by=request.user)
    except REFUSALS as exc:
        return _live_response(request, pk, error=str(exc), status=status_of(exc))
    return _live_response(request, pk)


def _incident_card(request, incident: Incident, *, error: str = "", status: int = 200):
    incident = Incident.objects.prefetch_related("services").get(pk=incident.pk)
    runs = list(RunbookRun.objects.for_list().filter(incident=incident)[: RECENT_RUNS * 4])
    active = [r for r in runs if r.is_active]
    finished = [r for r in runs if not r.is_active][:RECENT_RUNS]
    waiting = any(r.state == RunState.WAITING_APPROVAL for r in active)
    responders = list(users_who_respond().values_list("pk", "username")[:50]) if waiting else []
    for run in active:
        # Name who can approve, never the starter (who cannot approve a dangerous step of their own).
        run.approver_names = [name for pk, name in responders if pk != run.started_by_id][:APPROVERS_SHOWN]
    context = {
        "incident": incident,
        "suggested": Runbook.objects.suggested_for(incident),
        "active_runs": active,
        "finished_runs": finished,
        "services": Service.objects.all(),
        "error": error,
    }
    return render(request, "runbooks/partials/incident_card.html", context, status=status)


@login_required
@require_GET
def incident_card(request, incident_pk: int):
    return _incident_card(request, get_object_or_404(Incident, pk=incident_pk))
