"""Shift math: who a schedule puts on call at a moment, and its shifts over a period.

Everything is computed from the layers' definitions, never stored: a rotation edited today is
right for every past and future moment at once. A layer's shift k starts

- for day and week shifts: at `handoff_time` on the local date `rotation_start + k * length`, in
  the schedule's zone (so a 09:00 handoff stays at 09:00 local time across DST changes; a local
  time that does not exist on a spring-forward day is read with the offset before the change,
  i.e. 02:30 becomes 03:30);
- for hour shifts: `k * length` hours of elapsed time after the first handoff.

Shift k belongs to participant `k mod n`. A restriction keeps only the parts of each shift
inside its local windows. Overrides win over every layer; among layers the highest priority that
covers a moment wins. Finding the shift at a moment is arithmetic (no walk from the rotation's
start), so "on call now" costs the same after a year of shifts as after a day.

Functions take schedules whose layers, participants and overrides are prefetched
(`with_rotations(queryset, start, end)` below, with a period containing the moments asked
about); they issue no queries of their own then.
"""

import bisect
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Prefetch

from incidents.models.schedules import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride, ShiftUnit

OVERRIDE = "override"


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime
    user: object  # the auth user
    source: str  # "override" or the layer's name
    layer_id: int | None = None


def with_rotations(queryset, start: datetime, end: datetime):
    """`queryset` of schedules with what the functions below read, in three queries whatever its size:
    layers with their participants and users, and the overrides overlapping [start, end)."""
    return queryset.prefetch_related(
        Prefetch(
            "layers",
            # Participants join their users (one query, not two): most of "on call now"'s time is
            # Django building rows and prefetch querysets, not the shift arithmetic (bench/oncall.py).
            queryset=ScheduleLayer.objects.prefetch_related(
                Prefetch("participants", queryset=LayerParticipant.objects.select_related("user"))
            ).order_by("-priority", "id"),
        ),
        Prefetch(
            "overrides",
            queryset=ScheduleOverride.objects.filter(ends_at__gt=start, starts_at__lt=end)
            .select_related("user")
            .order_by("starts_at", "id"),
            to_attr="window_overrides",
        ),
    )


def load(schedule_ids, start: datetime, end: datetime) -> list[Schedule]:
    return list(with_rotations(Schedule.objects.filter(pk__in=schedule_ids), start, end))


# --- one layer --------------------------------------------------------------------------------


def _step(layer: ScheduleLayer) -> timedelta:
    days = {ShiftUnit.HOURS: 0, ShiftUnit.DAYS: 1, ShiftUnit.WEEKS: 7}[layer.shift_unit]
    if days == 0:
        return timedelta(hours=layer.shift_length)
    return timedelta(days=days * layer.shift_length)


def _aware(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous local time (fall back) is its first occurrence; a missing one (spring
    # forward) is read with the earlier offset. Normalised through UTC so comparisons are exact.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def shift_start(layer: ScheduleLayer, zone: ZoneInfo, k: int) -> datetime:
    """When shift k of `layer` begins (k may be negative: before the rotation's start)."""
    step = _step(layer)
    if layer.shift_unit == ShiftUnit.HOURS:
        return _aware(layer.rotation_start, layer.handoff_time, zone) + k * step
    return _aware(layer.rotation_start + k * step, layer.handoff_time, zone)


def shift_index(layer: ScheduleLayer, zone: ZoneInfo, at: datetime) -> int:
    """The k whose shift contains `at`."""
    step = _step(layer)
    if layer.shift_unit == ShiftUnit.HOURS:
        origin = _aware(layer.rotation_start, layer.handoff_time, zone)
        k = math.floor((at - origin) / step)
    else:
        origin = datetime.combine(layer.rotation_start, layer.handoff_time)
        local = at.astimezone(zone).replace(tzinfo=None)
        k = math.floor((local - origin) / step)
    # Wall-clock arithmetic can be one off in the repeated or missing hour of a DST change.
    while shift_start(layer, zone, k) > at:
        k -= 1
    while shift_start(layer, zone, k + 1) <= at:
        k += 1
    return k


def _participants(layer: ScheduleLayer) -> list:
    return [p.user for p in layer.participants.all()]


def _in_window(layer: ScheduleLayer, local: datetime) -> bool:
    days = layer.restrict_weekdays
    if layer.restrict_start is None:
        return not days or local.weekday() in days
    clock = local.time()
    start, end = layer.restrict_start, layer.restrict_end
    if start < end:
        return start <= clock < end and (not days or local.weekday() in days)
    if clock >= start:
        opened = local.weekday()
    elif clock < end:
        opened = (local.weekday() - 1) % 7  # an overnight window belongs to the day it opened
    else:
        return False
    return not days or opened in days


def _windows(layer: ScheduleLayer, zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The layer's restriction as UTC intervals overlapping [start, end), merged where they touch."""
    if not layer.restricted:
        return [(start, end)]
    days = layer.restrict_weekdays
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    out: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        if not days or day.weekday() in days:
            if layer.restrict_start is None:
                opens, closes = _aware(day, time(0), zone), _aware(day + timedelta(days=1), time(0), zone)
            else:
                opens = _aware(day, layer.restrict_start, zone)
                close_day = day if layer.restrict_end > layer.restrict_start else day + timedelta(days=1)
                closes = _aware(close_day, layer.restrict_end, zone)
            opens, closes = max(opens, start), min(closes, end)
            if opens < closes:
                if out and out[-1][1] >= opens:
                    out[-1] = (out[-1][0], max(out[-1][1], closes))
                else:
                    out.append((opens, closes))
        day += timedelta(days=1)
    return out


def layer_on_call(layer: ScheduleLayer, zone: ZoneInfo, at: datetime):
    """The participant `layer` puts on call at `at`, or None (no participants, not started,
    outside its restriction)."""
    people = _participants(layer)
    if not people or not _in_window(layer, at.astimezone(zone)):
        return None
    k = shift_index(layer, zone, at)
    return people[k % len(people)] if k >= 0 else None


def layer_shifts(layer: ScheduleLayer, zone: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    """The layer's own shifts overlapping [start, end), cut to its restriction and the period."""
    people = _participants(layer)
    if not people or start >= end:
        return []
    shifts = []
    k = max(shift_index(layer, zone, start), 0)
    begins = shift_start(layer, zone, k)
    windows = _windows(layer, zone, start, end)
    while begins < end:
        ends = shift_start(layer, zone, k + 1)
        for opens, closes in windows:
            lo, hi = max(begins, opens, start), min(ends, closes, end)
            if lo < hi:
                shifts.append(Shift(lo, hi, people[k % len(people)], layer.name, layer.pk))
        k += 1
        begins = ends
    return shifts


# --- a schedule -------------------------------------------------------------------------------


def _overrides(schedule: Schedule, start: datetime, end: datetime) -> list[ScheduleOverride]:
    loaded = getattr(schedule, "window_overrides", None)
    if loaded is None:
        loaded = list(
            schedule.overrides.filter(ends_at__gt=start, starts_at__lt=end).select_related("user").order_by("id")
        )
    return [o for o in loaded if o.ends_at > start and o.starts_at < end]


def on_call_at(schedule: Schedule, at: datetime) -> Shift | None:
    """Who `schedule` puts on call at `at` (the override or layer deciding it), or None. The
    shift's end is that of the deciding source alone; `shifts()` gives the merged timeline."""
    overrides = _overrides(schedule, at, at + timedelta(microseconds=1))
    if overrides:
        chosen = max(overrides, key=lambda o: o.pk)  # the newest override wins where two overlap
        return Shift(chosen.starts_at, chosen.ends_at, chosen.user, OVERRIDE)
    zone = schedule.zone
    for layer in schedule.layers.all():  # highest priority first
        user = layer_on_call(layer, zone, at)
        if user is not None:
            k = shift_index(layer, zone, at)
            return Shift(shift_start(layer, zone, k), shift_start(layer, zone, k + 1), user, layer.name, layer.pk)
    return None


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final timeline of [start, end): who is on call when, overrides and priorities applied,
    consecutive pieces of the same person from the same source merged. Gaps are nobody."""
    zone = schedule.zone
    # Sources in the order they win: the overrides, then the layers by priority.
    sources = [_override_shifts(schedule, start, end)]
    sources += [layer_shifts(layer, zone, start, end) for layer in schedule.layers.all()]
    bounds = sorted({t for source in sources for s in source for t in (s.start, s.end)})
    starts = [[s.start for s in source] for source in sources]
    merged: list[Shift] = []
    for lo, hi in itertools.pairwise(bounds):
        winner = None
        for source, source_starts in zip(sources, starts, strict=True):
            i = bisect.bisect_right(source_starts, lo) - 1
            if i >= 0 and source[i].end > lo:
                winner = source[i]
                break
        if winner is None:
            continue
        last = merged[-1] if merged else None
        if last and last.end == lo and last.user == winner.user and last.source == winner.source:
            merged[-1] = Shift(last.start, hi, last.user, last.source, last.layer_id)
        else:
            merged.append(Shift(lo, hi, winner.user, winner.source, winner.layer_id))
    return merged


def _override_shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The overrides as one list of non-overlapping shifts, the newest winning where two overlap."""
    overrides = _overrides(schedule, start, end)
    bounds = sorted({t for o in overrides for t in (max(o.starts_at, start), min(o.ends_at, end))})
    out: list[Shift] = []
    for lo, hi in itertools.pairwise(bounds):
        covering = [o for o in overrides if o.starts_at <= lo and o.ends_at > lo]
        if covering:
            user = max(covering, key=lambda o: o.pk).user
            if out and out[-1].end == lo and out[-1].user == user:
                out[-1] = Shift(out[-1].start, hi, user, OVERRIDE)
            else:
                out.append(Shift(lo, hi, user, OVERRIDE))
    return out


def on_call_now(schedules, now: datetime) -> list[tuple[Schedule, Shift | None]]:
    return [(schedule, on_call_at(schedule, now)) for schedule in schedules]
