"""Staff triage of problem reports: every role reads the list, responders act on it."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from incidents.choices import ReportStatus
from incidents.forms import DismissReportForm, EscalateReportForm
from incidents.models import Incident, ProblemReport
from opsportal.errors import REFUSALS, status_of
from opsportal.roles import responder_required


def _list(request, *, status: int = 200, error: str = "", failed: int | None = None, form=None):
    shown = request.GET.get("status", ReportStatus.NEW)
    reports = ProblemReport.objects.for_list()
    if shown in ReportStatus.values:
        reports = reports.filter(status=shown)
    else:
        shown = ""
    page = Paginator(reports, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "shown": shown,
        "statuses": ReportStatus.choices,
        "open_incidents": list(Incident.objects.open().order_by("-id")[:50]),
        "error": error,
        "failed": failed,
        "failed_form": form,
        "retention_days": settings.RETENTION_DAYS,
    }
    return render(request, "incidents/reports.html", context, status=status)


@login_required
@require_GET
def report_list(request):
    return _list(request)


@responder_required
@require_POST
def escalate(request, pk: int):
    report = get_object_or_404(ProblemReport, pk=pk)
    form = EscalateReportForm(request.POST)
    if not form.is_valid():
        return _list(request, status=400, error="Check the incident and severity.", failed=pk, form=form)
    try:
        incident = report.escalate(by=request.user, **form.cleaned_data)
    except REFUSALS as exc:
        return _list(request, status=status_of(exc), error=str(exc), failed=pk)
    messages.success(request, f"{report.reference} is now part of {incident.reference}.")
    return redirect("incidents:detail", pk=incident.pk)


@responder_required
@require_POST
def dismiss(request, pk: int):
    report = get_object_or_404(ProblemReport, pk=pk)
    form = DismissReportForm(request.POST)
    if not form.is_valid():
        return _list(request, status=400, error="The reason is too long (500 characters at most).", failed=pk)
    try:
        report.dismiss(by=request.user, reason=form.cleaned_data["reason"])
    except REFUSALS as exc:
        return _list(request, status=status_of(exc), error=str(exc), failed=pk)
    messages.success(request, f"{report.reference} dismissed.")
    return redirect("incidents:reports")
