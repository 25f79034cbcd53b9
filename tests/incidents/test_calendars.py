"""iCalendar: private feeds per schedule and per person (secret URL, revocable, hashed), and
importing another tool's .ics export as overrides or a rotation; export → import round trip."""

from datetime import UTC, date, datetime, time, timedelta

import icalendar
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from incidents import oncall
from incidents.models import CalendarFeed, LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
# Friday 20 March 2026: Paris moves to summer time on the 29th, inside the feed's window.
T0 = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def people(db):
    return [
        UserFactory(username=name, email=f"{name}@example.com", role="responder") for name in ("dora", "erin", "finn")
    ]


@pytest.fixture
def primary(people):
    schedule = Schedule.objects.create(name="Primary", time_zone="Europe/Paris")
    layer = ScheduleLayer.objects.create(
        schedule=schedule, name="Weekly", shift_unit="weeks", rotation_start=date(2026, 2, 16), handoff_time=time(9)
    )
    for i, user in enumerate(people):
        LayerParticipant.objects.create(layer=layer, user=user, position=i)
    return schedule


def final(schedule, start, end):
    [loaded] = oncall.load([schedule.pk], start, end)
    return [(s.start, s.end, s.user.username) for s in oncall.shifts(loaded, start, end)]


def make_feed(client, user, schedule):
    client.force_login(user)
    with time_machine.travel(T0, tick=False):
        response = client.post(f"/incidents/schedules/{schedule.pk}/feeds/")
    assert response.status_code == 200
    url = response.content.decode().split('data-testid="feed-url" aria-label="Calendar feed URL" size="90"')[0]
    url = url.rsplit('value="', 1)[1].split('"')[0]
    assert "/incidents/calendar/" in url and url.endswith(".ics")
    client.logout()
    return url.split("://", 1)[1].split("/", 1)[1]


def fetch(client, path):
    with time_machine.travel(T0, tick=False):
        return client.get("/" + path)


def upload(client, schedule, body: bytes, mode: str, name="export.ics"):
    with time_machine.travel(T0, tick=False):
        return client.post(
            f"/incidents/schedules/{schedule.pk}/import/",
            {"file": SimpleUploadedFile(name, body, content_type="text/calendar"), "mode": mode},
        )


def test_schedule_feed_is_a_private_revocable_ics_url(client, primary, viewer):
    path = make_feed(client, viewer, primary)
    token = path.split("/")[-1].removesuffix(".ics")
    response = fetch(client, path)  # a calendar app: no session
    assert response.status_code == 200 and response["Content-Type"] == "text/calendar; charset=utf-8"
    cal = icalendar.Calendar.from_ical(response.content)
    events = list(cal.walk("VEVENT"))
    assert str(cal["x-wr-calname"]) == "On call: Primary"
    first = events[0]
    # The feed starts a week back, inside dora's week (until Monday 16 March 09:00 Paris).
    assert str(first["summary"]) == "dora on call (Primary)"
    assert first.decoded("dtstart") == T0 - timedelta(days=7)
    assert first.decoded("dtend") == datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    assert str(first["attendee"]) == "mailto:dora@example.com"
    # The week across the change to summer time still hands off at 09:00 local: 07:00 UTC.
    assert any(e.decoded("dtstart") == datetime(2026, 3, 30, 7, 0, tzinfo=UTC) for e in events)
    feed = CalendarFeed.objects.get()
    assert token not in feed.token_hash and feed.token_hint == token[:6] and feed.last_fetched_at == T0

    assert fetch(client, path[:-10] + "x" * 6 + ".ics").status_code == 404
    client.force_login(viewer)
    assert client.post(f"/incidents/schedules/feeds/{feed.pk}/revoke/").status_code == 302
    client.logout()
    assert fetch(client, path).status_code == 404


def test_someone_elses_feed_cannot_be_revoked(client, primary, viewer, responder):
    make_feed(client, viewer, primary)
    feed = CalendarFeed.objects.get()
    client.force_login(responder)
    assert client.post(f"/incidents/schedules/feeds/{feed.pk}/revoke/").status_code == 404
    feed.refresh_from_db()
    assert feed.revoked_at is None


def test_person_feed_holds_their_shifts_and_only_they_make_it(client, primary, people, viewer):
    dora = people[0]
    other = Schedule.objects.create(name="Databases", time_zone="UTC")
    ScheduleOverride.objects.create(
        schedule=other, user=dora, starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=3)
    )
    client.force_login(viewer)
    assert client.post("/incidents/schedules/people/dora/feeds/").status_code == 403
    assert not CalendarFeed.objects.exists()
    client.force_login(dora)
    with time_machine.travel(T0, tick=False):
        html = client.post("/incidents/schedules/people/dora/feeds/").content.decode()
    path = (
        html.split('data-testid="feed-url"')[0].rsplit('value="', 1)[1].split('"')[0].split("://")[1].split("/", 1)[1]
    )
    client.logout()
    events = icalendar.Calendar.from_ical(fetch(client, path).content).walk("VEVENT")
    summaries = [str(e["summary"]) for e in events]
    assert summaries[:2] == ["dora on call (Primary)", "dora on call (Databases)"]
    assert all(s.startswith("dora ") for s in summaries)


@pytest.mark.parametrize("mode", ["rotation", "overrides"])
def test_export_then_import_gives_the_same_shifts(client, primary, admin_user, mode):
    path = make_feed(client, admin_user, primary)
    exported = fetch(client, path).content
    copy = Schedule.objects.create(name="Copy", time_zone="Europe/Paris")
    client.force_login(admin_user)
    response = upload(client, copy, exported, mode)
    assert response.status_code == 302, response.content.decode()[:2000]
    start, end = T0 - timedelta(days=7), T0 + timedelta(days=90)
    assert final(copy, start, end) == final(primary, start, end)
    if mode == "rotation":
        layer = copy.layers.get()
        assert (layer.shift_unit, layer.shift_length, layer.handoff_time) == ("weeks", 1, time(9))
        # The same order, starting from the first whole shift in the file (erin's).
        assert [p.user.username for p in layer.participants.all()] == ["erin", "finn", "dora"]
        # A rotation goes on past the file's last event.
        later = T0 + timedelta(days=200)
        assert final(copy, later, later + timedelta(days=21)) == final(primary, later, later + timedelta(days=21))
    else:
        events = len(icalendar.Calendar.from_ical(exported).walk("VEVENT"))
        assert copy.overrides.count() == events > 10
        assert upload(client, copy, exported, mode).status_code == 302  # again: nothing added twice
        assert copy.overrides.count() == events


OTHER_TOOL = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Example Pager//Schedules 2.1//EN
X-WR-CALNAME:Payments primary
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:STANDARD
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:pay-1@pager.example
DTSTAMP:20260301T000000Z
DTSTART;TZID=America/New_York:20260302T100000
DTEND;TZID=America/New_York:20260303T100000
RRULE:FREQ=DAILY;INTERVAL=2
SUMMARY:On-call: Payments primary - dora
ATTENDEE;CN=Dora Diaz:mailto:DORA@example.com
END:VEVENT
BEGIN:VEVENT
UID:pay-2@pager.example
DTSTAMP:20260301T000000Z
DTSTART;TZID=America/New_York:20260303T100000
DTEND;TZID=America/New_York:20260304T100000
RRULE:FREQ=DAILY;INTERVAL=2
EXDATE;TZID=America/New_York:20260323T100000
SUMMARY:On-call: Payments primary - erin
END:VEVENT
END:VCALENDAR
"""


def test_import_another_tools_recurring_export_as_a_rotation(client, people, admin_user):
    schedule = Schedule.objects.create(name="Payments", time_zone="America/New_York")
    client.force_login(admin_user)
    # erin's shift of 23 March is excluded (EXDATE): the events are not one rotation.
    response = upload(client, schedule, OTHER_TOOL, "rotation")
    assert response.status_code == 400
    assert "not one rotation" in response.content.decode()
    assert not schedule.layers.exists()

    fixed = OTHER_TOOL.replace(b"EXDATE;TZID=America/New_York:20260323T100000\r\n", b"").replace(
        b"EXDATE;TZID=America/New_York:20260323T100000\n", b""
    )
    assert upload(client, schedule, fixed, "rotation").status_code == 302
    layer = schedule.layers.get()
    assert (layer.shift_unit, layer.shift_length, layer.handoff_time) == ("days", 1, time(10))
    assert sorted(p.user.username for p in layer.participants.all()) == ["dora", "erin"]
    [loaded] = oncall.load([schedule.pk], T0, T0 + timedelta(days=1))
    # dora has the even days from 2 March: 20 March from 10:00 New York time (14:00 UTC, summer time).
    assert oncall.on_call_at(loaded, T0).user.username == "erin"
    assert oncall.on_call_at(loaded, datetime(2026, 3, 20, 14, 0, tzinfo=UTC)).user.username == "dora"


def test_import_as_overrides_keeps_gaps(client, people, admin_user):
    schedule = Schedule.objects.create(name="Payments", time_zone="America/New_York")
    client.force_login(admin_user)
    assert upload(client, schedule, OTHER_TOOL, "overrides").status_code == 302
    overrides = list(schedule.overrides.order_by("starts_at"))
    assert overrides[0].note == "Imported from export.ics"
    days = {o.starts_at.date() for o in overrides if o.user.username == "erin"}
    assert date(2026, 3, 23) not in {(d - timedelta(hours=0)) for d in days}
    assert date(2026, 3, 21) in days


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "The submitted file is empty"),
        (b"not a calendar\x00", "not a readable iCalendar file"),
        (OTHER_TOOL.replace(b"- dora", b"- zed").replace(b"DORA@example.com", b"zed@example.org"), "On-call"),
    ],
)
def test_bad_files_are_refused_naming_the_field_and_write_nothing(client, people, admin_user, body, message):
    schedule = Schedule.objects.create(name="Payments", time_zone="America/New_York")
    client.force_login(admin_user)
    response = upload(client, schedule, body, "overrides")
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert not schedule.overrides.exists() and not schedule.layers.exists()


def test_only_admins_import(client, people, responder):
    schedule = Schedule.objects.create(name="Payments", time_zone="America/New_York")
    client.force_login(responder)
    assert upload(client, schedule, OTHER_TOOL, "overrides").status_code == 403
    assert not schedule.overrides.exists()
