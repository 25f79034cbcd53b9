"""On-call pages: the schedules, one schedule as a two-week calendar in the viewer's time zone,
and a person's upcoming shifts, each with its private calendar feeds. Every signed-in role reads
them."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from incidents import schedule_calendar
from incidents.forms import ScheduleImportForm
from incidents.models import CalendarFeed, Schedule
from incidents.oncall import on_call_now, with_rotations
from opsportal.roles import is_admin

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
    return render_schedule(request, pk)


def _my_feeds(user, **which):
    feeds = CalendarFeed.objects.active().filter(**which).select_related("owner")
    return list(feeds if is_admin(user) else feeds.filter(owner=user))


def render_schedule(request, pk: int, *, status: int = 200, new_feed_url: str = "", import_form=None):
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
        "feeds": _my_feeds(request.user, schedule=schedule),
        "new_feed_url": new_feed_url,
        "import_form": import_form or ScheduleImportForm(),
    }
    return render(request, "incidents/schedules/detail.html", context, status=status)


@login_required
@require_GET
def person_shifts(request, username: str):
    return render_person(request, username)


def render_person(request, username: str, *, status: int = 200, new_feed_url: str = "", error: str = ""):
    person = get_object_or_404(get_user_model(), username=username, is_active=True)
    now = timezone.now()
    context = {
        "person": person,
        "shifts": schedule_calendar.upcoming_shifts(person, now, PERSON_DAYS),
        "days": PERSON_DAYS,
        "viewer_zone": timezone.get_current_timezone_name(),
        "now": now,
        "feeds": _my_feeds(request.user, person=person),
        "may_subscribe": person.pk == request.user.pk or is_admin(request.user),
        "new_feed_url": new_feed_url,
        "error": error,
    }
    return render(request, "incidents/schedules/person.html", context, status=status)
