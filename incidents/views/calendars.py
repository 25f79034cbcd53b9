"""Calendar feeds and imports: the private `.ics` URL calendar apps fetch (the token is the
credential, no sign-in), making and revoking feed links, and importing another tool's `.ics`
export into a schedule (admins)."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from incidents import ical
from incidents.forms import ScheduleImportForm
from incidents.models import CalendarFeed, Schedule
from incidents.views.schedules import render_person, render_schedule
from opsportal.errors import REFUSALS, status_of
from opsportal.roles import admin_required, is_admin


@require_GET
def calendar_feed(request, token: str):
    feed = CalendarFeed.for_token(token)
    if feed is None:
        raise Http404("No such calendar feed (it may have been revoked).")
    now = timezone.now()
    body = ical.schedule_feed(feed.schedule_id, now) if feed.schedule_id else ical.person_feed(feed.person, now)
    CalendarFeed.objects.filter(pk=feed.pk).update(last_fetched_at=now)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="on-call.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
@require_POST
def new_schedule_feed(request, pk: int):
    schedule = get_object_or_404(Schedule, pk=pk)
    feed, token = CalendarFeed.create(owner=request.user, schedule=schedule)
    return render_schedule(request, pk, new_feed_url=feed.url(token))


@login_required
@require_POST
def new_person_feed(request, username: str):
    person = get_object_or_404(get_user_model(), username=username, is_active=True)
    if person.pk != request.user.pk and not is_admin(request.user):
        return render_person(request, username, status=403, error="Only the person (or an admin) makes their feed.")
    feed, token = CalendarFeed.create(owner=request.user, person=person)
    return render_person(request, username, new_feed_url=feed.url(token))


@login_required
@require_POST
def revoke_feed(request, feed_id: int):
    feed = get_object_or_404(CalendarFeed.objects.select_related("schedule", "person"), pk=feed_id)
    if not feed.may_manage(request.user):
        raise Http404("No such calendar feed.")  # someone else's feed: not even its existence
    feed.revoke()
    messages.success(request, f"Feed {feed.token_hint}… revoked: its URL no longer answers.")
    if feed.schedule_id:
        return redirect("incidents:schedule", pk=feed.schedule_id)
    return redirect("incidents:person_shifts", username=feed.person.get_username())


@admin_required
@require_POST
def import_ics(request, pk: int):
    schedule = get_object_or_404(Schedule, pk=pk)
    form = ScheduleImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return render_schedule(request, pk, status=400, import_form=form)
    upload = form.cleaned_data["file"]
    try:
        report = ical.import_schedule(
            schedule, upload.read(), mode=form.cleaned_data["mode"], by=request.user, name=upload.name
        )
    except REFUSALS as exc:
        form.add_error("file", str(exc).removeprefix("file: "))
        return render_schedule(request, pk, status=status_of(exc), import_form=form)
    messages.success(request, f"Imported {upload.name}: {report}")
    return redirect("incidents:schedule", pk=pk)
