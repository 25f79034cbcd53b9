"""iCalendar: a schedule's (or a person's) shifts as an `.ics` feed, and a schedule imported from
another tool's `.ics` export, as overrides or as a rotation.

Parsing and recurrence expansion are icalendar's and recurring-ical-events' (RRULE, EXDATE,
RECURRENCE-ID, VTIMEZONE), never a hand-written parser. An imported event names its person by an
ATTENDEE e-mail address (what most paging tools export), else by an ATTENDEE's CN or a word of
its SUMMARY equal to a username; an event naming nobody known refuses the whole file.

Export → import gives the same shifts: the feed holds each final shift as one event (UTC times,
the person as ATTENDEE); importing it as overrides writes those periods back, and importing it as
a rotation finds the shift length, the handoff and the order of participants from the events and
checks that the rotation reproduces every one of them, else refuses (import as overrides then).
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import icalendar
import recurring_ical_events
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from incidents import oncall
from incidents.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from incidents.models.schedules import ShiftUnit
from opsportal.errors import BadParameters

PRODID = "-//Ops Portal//On-call schedules//EN"
FEED_PAST_DAYS = 7
FEED_FUTURE_DAYS = 90
IMPORT_MAX_BYTES = 1024 * 1024
IMPORT_MAX_EVENTS = 5000
IMPORT_PAST_DAYS = 7
IMPORT_FUTURE_DAYS = 93


# --- export -----------------------------------------------------------------------------------


def feed_window(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(days=FEED_PAST_DAYS), now + timedelta(days=FEED_FUTURE_DAYS)


def _calendar(name: str) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    return cal


def _event(schedule: Schedule, shift: oncall.Shift, stamp: datetime) -> icalendar.Event:
    username = shift.user.get_username()
    event = icalendar.Event()
    event.add("uid", f"shift-{schedule.pk}-{shift.start:%Y%m%dT%H%M%SZ}-{shift.user.pk}@ops-portal")
    event.add("dtstamp", stamp)
    event.add("dtstart", shift.start.astimezone(UTC))
    event.add("dtend", shift.end.astimezone(UTC))
    event.add("summary", f"{username} on call ({schedule.name})")
    event.add("description", f"Schedule {schedule.name}, {shift.source}.")
    event.add("transp", "TRANSPARENT")  # being on call does not make a person busy
    if shift.user.email:
        event.add("attendee", f"mailto:{shift.user.email}", parameters={"CN": username})
    event.add("categories", ["on-call"])
    return event


def schedule_feed(schedule_id: int, now: datetime) -> bytes:
    start, end = feed_window(now)
    [schedule] = oncall.load([schedule_id], start, end)
    cal = _calendar(f"On call: {schedule.name}")
    for shift in oncall.shifts(schedule, start, end):
        cal.add_component(_event(schedule, shift, now))
    return cal.to_ical()


def person_feed(user, now: datetime) -> bytes:
    from incidents.schedule_calendar import upcoming_shifts

    start, end = feed_window(now)
    cal = _calendar(f"On call: {user.get_username()}")
    for schedule, shift in upcoming_shifts(user, start, (end - start).days):
        cal.add_component(_event(schedule, shift, now))
    return cal.to_ical()


# --- import -----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    mode: str
    events: int = 0
    created: int = 0
    unchanged: int = 0
    people: list[str] = field(default_factory=list)
    layer: ScheduleLayer | None = None

    def __str__(self) -> str:
        people = ", ".join(self.people)
        if self.mode == "rotation":
            layer = self.layer
            return (
                f"{self.events} events became the layer {layer.name!r}: {layer.shift_length} {layer.shift_unit} "
                f"shifts handing off at {layer.handoff_time:%H:%M} ({people})."
            )
        return f"{self.events} events: {self.created} overrides added, {self.unchanged} already there ({people})."


@dataclass(frozen=True)
class _Event:
    start: datetime
    end: datetime
    user: object


def read_events(data: bytes, zone, start: datetime, end: datetime) -> list[_Event]:
    """The events of an `.ics` file overlapping [start, end), recurrences expanded, each with the
    user it names. Refuses (BadParameters naming `file`) what cannot be used."""
    if not data:
        raise BadParameters("file: the file is empty.")
    if len(data) > IMPORT_MAX_BYTES:
        raise BadParameters(f"file: larger than {IMPORT_MAX_BYTES // 1024} KiB.")
    try:
        cal = icalendar.Calendar.from_ical(data)
        occurrences = list(itertools.islice(recurring_ical_events.of(cal).between(start, end), IMPORT_MAX_EVENTS + 1))
    except Exception as exc:
        raise BadParameters(f"file: not a readable iCalendar file ({type(exc).__name__}: {exc}).") from exc
    if len(occurrences) > IMPORT_MAX_EVENTS:
        raise BadParameters(f"file: more than {IMPORT_MAX_EVENTS} events in the period; import a shorter period.")
    users = _users()
    events, unknown = [], set()
    for occurrence in occurrences:
        if occurrence.name != "VEVENT":
            continue
        begins, ends = _moment(occurrence.get("dtstart"), zone), _moment(occurrence.get("dtend"), zone)
        if begins is None:
            continue
        if ends is None:
            duration = occurrence.get("duration")
            ends = begins + (duration.dt if duration else timedelta(days=1))
        if ends <= begins:
            continue
        user = _person(occurrence, users)
        if user is None:
            unknown.add(str(occurrence.get("summary", "")) or str(occurrence.get("uid", "?")))
            continue
        events.append(_Event(begins, ends, user))
    if unknown:
        raise BadParameters(f"file: no user of the portal is named by these events: {', '.join(sorted(unknown)[:10])}.")
    if not events:
        raise BadParameters("file: no events in the period to import.")
    events.sort(key=lambda e: (e.start, e.end))
    return events


def _moment(prop, zone) -> datetime | None:
    if prop is None:
        return None
    value = prop.dt
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)  # floating: the schedule's
    if isinstance(value, date):  # an all-day event: from local midnight
        return datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)
    return None


def _users() -> dict[str, object]:
    by = {}
    for user in get_user_model().objects.filter(is_active=True):
        by[user.get_username().lower()] = user
        if user.email:
            by.setdefault(user.email.lower(), user)
    return by


def _person(event, users: dict):
    attendees = event.get("attendee") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    for attendee in attendees:
        address = str(attendee).lower().removeprefix("mailto:")
        if address in users:
            return users[address]
        name = str(attendee.params.get("CN", "")).lower()
        if name in users:
            return users[name]
    summary = str(event.get("summary", "")).lower()
    for word in summary.replace("(", " ").replace(")", " ").replace(":", " ").split():
        if word in users:
            return users[word]
    return None


def import_schedule(
    schedule: Schedule, data: bytes, *, mode: str, by=None, name: str = "", now: datetime | None = None
) -> ImportReport:
    """Import an `.ics` file into `schedule`: `overrides` (each event an override) or `rotation`
    (a new top layer). Everything or nothing is written."""
    if mode not in ("overrides", "rotation"):
        raise BadParameters("mode: 'overrides' or 'rotation'.")
    now = now or timezone.now()
    start, end = now - timedelta(days=IMPORT_PAST_DAYS), now + timedelta(days=IMPORT_FUTURE_DAYS)
    events = read_events(data, schedule.zone, start, end)
    report = ImportReport(mode=mode, events=len(events))
    report.people = sorted({e.user.get_username() for e in events})
    note = f"Imported from {name}"[:200] if name else "Imported from an .ics file"
    with transaction.atomic():
        Schedule.objects.select_for_update().get(pk=schedule.pk)
        if mode == "overrides":
            existing = set(
                schedule.overrides.filter(starts_at__lt=end, ends_at__gt=start).values_list(
                    "user_id", "starts_at", "ends_at"
                )
            )
            new = [e for e in events if (e.user.pk, e.start, e.end) not in existing]
            ScheduleOverride.objects.bulk_create(
                ScheduleOverride(
                    schedule=schedule, user=e.user, starts_at=e.start, ends_at=e.end, note=note, created_by=by
                )
                for e in new
            )
            report.created, report.unchanged = len(new), len(events) - len(new)
        else:
            report.layer = _rotation(schedule, events, name=name or "Imported")
            report.created = 1
    return report


def _rotation(schedule: Schedule, events: list[_Event], *, name: str) -> ScheduleLayer:
    zone = schedule.zone
    for a, b in itertools.pairwise(events):
        if a.end != b.start:
            raise BadParameters(
                f"file: the events are not one rotation (a gap or overlap at {b.start:%Y-%m-%d %H:%M} UTC); "
                "import them as overrides."
            )
    # The first and last events may be cut by the exporter's window: the handoffs between them are exact.
    exact = events[1:]
    if len(exact) < 2:
        raise BadParameters("file: a rotation needs at least three consecutive shifts; import them as overrides.")
    local = [e.start.astimezone(zone).replace(tzinfo=None) for e in exact]
    wall = {b - a for a, b in itertools.pairwise(local)}
    elapsed = {b.start - a.start for a, b in itertools.pairwise(exact)}
    if len(wall) == 1 and next(iter(wall)) % timedelta(days=7) == timedelta(0):
        unit, length, step = ShiftUnit.WEEKS, next(iter(wall)) // timedelta(days=7), next(iter(wall))
    elif len(wall) == 1 and next(iter(wall)) % timedelta(days=1) == timedelta(0):
        unit, length, step = ShiftUnit.DAYS, next(iter(wall)) // timedelta(days=1), next(iter(wall))
    elif len(elapsed) == 1 and next(iter(elapsed)) % timedelta(hours=1) == timedelta(0):
        unit, length, step = ShiftUnit.HOURS, next(iter(elapsed)) // timedelta(hours=1), next(iter(elapsed))
    else:
        raise BadParameters("file: the shifts are not of one length; import them as overrides.")
    people = [e.user for e in exact]
    cycle = next(n for n in range(1, len(people) + 1) if all(p == people[i % n] for i, p in enumerate(people)))
    # Start one cycle earlier so the first (possibly cut) event is covered by the same order.
    if unit == ShiftUnit.HOURS:
        origin = (exact[0].start - cycle * step).astimezone(zone)
        rotation_start, handoff = origin.date(), origin.time().replace(tzinfo=None)
    else:
        rotation_start, handoff = (local[0] - cycle * step).date(), local[0].time()
    priority = (schedule.layers.aggregate(top=Max("priority"))["top"] or 0) + 1
    layer = ScheduleLayer.objects.create(
        schedule=schedule,
        name=name[:120],
        priority=priority,
        shift_unit=unit,
        shift_length=length,
        rotation_start=rotation_start,
        handoff_time=handoff,
    )
    LayerParticipant.objects.bulk_create(
        LayerParticipant(layer=layer, user=user, position=i) for i, user in enumerate(people[:cycle])
    )
    layer = ScheduleLayer.objects.prefetch_related("participants__user").get(pk=layer.pk)
    made = [(s.start, s.end, s.user.pk) for s in oncall.layer_shifts(layer, zone, events[0].start, events[-1].end)]
    if made != [(e.start, e.end, e.user.pk) for e in events]:
        raise BadParameters("file: no regular rotation reproduces these events; import them as overrides.")
    return layer
