"""On-call pages: the schedules, one schedule as a two-week calendar in the viewer's time zone,
and a person's upcoming shifts. Every signed-in role reads them."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from incidents import schedule_calendar
from incidents.models import Schedule
from incidents.oncall import on_call_now, with_rotations

PERSON_DAYS = 28


@login_required
@require_GET
def schedule_list(request):
    now = timezone.now()
    schedules = with_rotations(Schedule.objects.all(), now, now + timedelta(microseconds=1))
    return render(request, "incidents/schedules/list.html", {"on_call": on_call_now(schedules, now), "now": now})


@login_required
@require_GET
def schedule_detail(request, pk: int):
    zone = timezone.get_current_timezone()
    found = schedule_calendar.calendar(pk, zone, timezone.localdate())
    if found is None:
        raise Http404("No such schedule.")
    schedule, shifts, days = found
    context = {
        "schedule": schedule,
        "shifts": shifts,
        "days": days,
        "viewer_zone": timezone.get_current_timezone_name(),
        "now": timezone.now(),
    }
    return render(request, "incidents/schedules/detail.html", context)


@login_required
@require_GET
def person_shifts(request, username: str):
    person = get_object_or_404(get_user_model(), username=username, is_active=True)
    now = timezone.now()
    context = {
        "person": person,
        "shifts": schedule_calendar.upcoming_shifts(person, now, PERSON_DAYS),
        "days": PERSON_DAYS,
        "viewer_zone": timezone.get_current_timezone_name(),
        "now": now,
    }
    return render(request, "incidents/schedules/person.html", context)
