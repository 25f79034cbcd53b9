"""What the schedule pages and the dashboard show: a schedule's final shifts over two weeks cut
into the viewer's days, the next handoffs of every schedule, a person's upcoming shifts.

Everything is read through `oncall.with_rotations` (a fixed number of queries whatever the number
of schedules, layers or overrides) and computed with the shift math of incidents/oncall.py.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from django.db.models import Q

from incidents import oncall
from incidents.models import Schedule

CALENDAR_DAYS = 14
HANDOFFS_DAYS = 14  # a weekly rotation hands off within 7 days; two weeks shows the next two
HANDOFFS_LIMIT = 10
SCHEDULES_LIMIT = 50


@dataclass(frozen=True)
class Piece:
    """The part of a shift inside one day of the viewer's calendar."""

    start: datetime
    end: datetime
    shift: oncall.Shift
    starts_before: bool  # the shift began on an earlier day
    to_midnight: bool  # it runs to the end of the day (shown as 24:00)


@dataclass(frozen=True)
class Handoff:
    schedule: Schedule
    at: datetime
    previous: object | None  # the user going off call, or None after a gap
    next: object | None  # the user coming on call, or None: a gap starts


def calendar(schedule_id: int, zone: tzinfo, today: date, days: int = CALENDAR_DAYS):
    """(schedule, its final shifts, the days with their pieces) from `today` 00:00 in the viewer's
    `zone`, for `days` days. None if there is no such schedule."""
    start = datetime.combine(today, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(today + timedelta(days=days), datetime.min.time(), tzinfo=zone)
    loaded = oncall.load([schedule_id], start, end)
    if not loaded:
        return None
    schedule = loaded[0]
    final = oncall.shifts(schedule, start, end)
    out = []
    for n in range(days):
        day = today + timedelta(days=n)
        lo = datetime.combine(day, datetime.min.time(), tzinfo=zone)
        hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        pieces = [
            Piece(max(s.start, lo), min(s.end, hi), s, s.start < lo, s.end >= hi)
            for s in final
            if s.start < hi and s.end > lo
        ]
        out.append((day, pieces))
    return schedule, final, out


def next_handoffs(now: datetime, *, days: int = HANDOFFS_DAYS, limit: int = HANDOFFS_LIMIT) -> list[Handoff]:
    """The next moments a schedule's on-call person changes, soonest first, at most one per
    schedule so a busy rotation does not hide the others."""
    end = now + timedelta(days=days)
    schedules = oncall.with_rotations(Schedule.objects.all(), now, end)[:SCHEDULES_LIMIT]
    found = []
    for schedule in schedules:
        final = oncall.shifts(schedule, now, end)
        handoff = _first_change(schedule, final, now, end)
        if handoff is not None:
            found.append(handoff)
    found.sort(key=lambda h: (h.at, h.schedule.name))
    return found[:limit]


def _first_change(schedule, final: list[oncall.Shift], now: datetime, end: datetime) -> Handoff | None:
    previous = final[0].user if final and final[0].start <= now else None
    at = now
    for shift in final:
        if shift.start > at and previous is not None:  # a gap: whoever was on call goes off
            return Handoff(schedule, at, previous, None)
        if shift.user != previous and shift.start > now:
            return Handoff(schedule, shift.start, previous, shift.user)
        previous, at = shift.user, shift.end
    if previous is not None and at < end:
        return Handoff(schedule, at, previous, None)
    return None


def upcoming_shifts(user, now: datetime, days: int) -> list[tuple[Schedule, oncall.Shift]]:
    """`user`'s final shifts (overrides and priorities applied) in every schedule they are part of,
    from now for `days` days, soonest first."""
    end = now + timedelta(days=days)
    mine = Schedule.objects.filter(
        Q(layers__participants__user=user) | Q(overrides__user=user, overrides__ends_at__gt=now)
    ).distinct()
    out = [
        (schedule, shift)
        for schedule in oncall.with_rotations(mine, now, end)
        for shift in oncall.shifts(schedule, now, end)
        if shift.user.pk == user.pk
    ]
    out.sort(key=lambda pair: (pair[1].start, pair[0].name))
    return out
