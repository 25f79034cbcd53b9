"""The on-call pages: schedules, a schedule's two-week calendar in the viewer's time zone, a
person's upcoming shifts, and the dashboard's next handoffs."""

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
# Wednesday 2026-03-04 10:00 UTC: bob's week (rotation from Monday 2026-02-16, admin1, carol, bob).
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def primary(db):
    people = [UserFactory(username=name, role="responder") for name in ("admin1", "carol", "bob")]
    schedule = Schedule.objects.create(name="Primary", time_zone="Europe/Paris")
    layer = ScheduleLayer.objects.create(
        schedule=schedule, name="Weekly", shift_unit="weeks", rotation_start=date(2026, 2, 16), handoff_time=time(9)
    )
    for i, user in enumerate(people):
        LayerParticipant.objects.create(layer=layer, user=user, position=i)
    return schedule


@pytest.fixture
def signed_in(client, viewer):
    client.force_login(viewer)
    return client


def rows(html: str, table_id: str) -> list[str]:
    body = html.split(f'id="{table_id}"')[1].split("</table>")[0]
    cells = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)[1:]
    # The page writes ranges with an en dash; compare with a plain one.
    return [" ".join(re.sub(r"<[^>]+>", " ", c).replace("\u2013", " - ").split()) for c in cells]


@pytest.mark.parametrize("role", ["viewer", "responder", "admin"])
def test_every_signed_in_role_reads_the_pages(client, user_for, role, primary):
    client.force_login(user_for(role))
    for url in ["/incidents/schedules/", f"/incidents/schedules/{primary.pk}/", "/incidents/schedules/people/bob/"]:
        assert client.get(url).status_code == 200, url


def test_anonymous_is_sent_to_sign_in(client, primary):
    for url in ["/incidents/schedules/", f"/incidents/schedules/{primary.pk}/", "/incidents/schedules/people/bob/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_unknown_schedule_or_person_is_404(signed_in):
    assert signed_in.get("/incidents/schedules/999/").status_code == 404
    assert signed_in.get("/incidents/schedules/people/nobody-here/").status_code == 404


def test_calendar_shows_two_weeks_in_the_viewers_time_zone(signed_in, primary):
    signed_in.cookies["tz"] = "America/New_York"
    with time_machine.travel(T0, tick=False):
        html = signed_in.get(f"/incidents/schedules/{primary.pk}/").content.decode()
    days = rows(html, "calendar")
    assert len(days) == 14
    assert days[0] == "Wed 04 Mar 00:00 - 24:00 bob Weekly"
    # New York moved to summer time on 8 March, Paris not before the 29th: Monday 09:00 in Paris
    # is 04:00 in New York on the 9th and the 16th (it would be 03:00 in winter).
    assert days[5] == "Mon 09 Mar 00:00 - 04:00 bob Weekly 04:00 - 24:00 admin1 Weekly"
    assert days[12] == "Mon 16 Mar 00:00 - 04:00 admin1 Weekly 04:00 - 24:00 carol Weekly"
    shifts = rows(html, "shifts")
    assert shifts[0] == "bob Wed 2026-03-04 00:00 EST Mon 2026-03-09 04:00 EDT Weekly"
    assert "America/New_York" in html


def test_an_override_and_a_gap_show_in_the_calendar(signed_in, primary):
    carol = primary.layers.get().participants.get(position=1).user
    ScheduleOverride.objects.create(
        schedule=primary, user=carol, starts_at=T0 + timedelta(hours=2), ends_at=T0 + timedelta(hours=5)
    )
    ScheduleLayer.objects.filter(schedule=primary).update(rotation_start=date(2026, 3, 10))  # starts next Tuesday
    signed_in.cookies["tz"] = "UTC"
    with time_machine.travel(T0, tick=False):
        html = signed_in.get(f"/incidents/schedules/{primary.pk}/").content.decode()
    days = rows(html, "calendar")
    assert days[0] == "Wed 04 Mar 12:00 - 15:00 carol override"
    assert days[1] == "Thu 05 Mar nobody on call"
    assert days[6] == "Tue 10 Mar 08:00 - 24:00 admin1 Weekly"


def test_calendar_queries_do_not_grow_with_layers_or_overrides(signed_in, primary):
    def count():
        with CaptureQueriesContext(connection) as captured, time_machine.travel(T0, tick=False):
            assert signed_in.get(f"/incidents/schedules/{primary.pk}/").status_code == 200
        return len(captured)

    count()  # the first request of the session may write it
    before = count()
    for priority in (2, 3):
        layer = ScheduleLayer.objects.create(
            schedule=primary,
            name=f"Layer {priority}",
            priority=priority,
            shift_unit="days",
            rotation_start=date(2026, 3, 1),
            handoff_time=time(8),
            restrict_weekdays=[0, 1, 2, 3, 4],
            restrict_start=time(9),
            restrict_end=time(17),
        )
        for i in range(3):
            LayerParticipant.objects.create(layer=layer, user=UserFactory(), position=i)
    for n in range(5):
        ScheduleOverride.objects.create(
            schedule=primary,
            user=UserFactory(),
            starts_at=T0 + timedelta(days=n),
            ends_at=T0 + timedelta(days=n, hours=2),
        )
    assert count() == before


def test_a_persons_upcoming_shifts_across_schedules(signed_in, primary):
    bob = primary.layers.get().participants.get(position=2).user
    secondary = Schedule.objects.create(name="Databases", time_zone="UTC")
    ScheduleOverride.objects.create(
        schedule=secondary, user=bob, starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=4)
    )
    signed_in.cookies["tz"] = "Europe/Paris"
    with time_machine.travel(T0, tick=False):
        html = signed_in.get("/incidents/schedules/people/bob/").content.decode()
    assert rows(html, "person-shifts") == [
        "Primary Wed 2026-03-04 11:00 CET (on call now) Mon 2026-03-09 09:00 CET Weekly",
        "Databases Thu 2026-03-05 11:00 CET Thu 2026-03-05 15:00 CET override",
        "Primary Mon 2026-03-23 09:00 CET Mon 2026-03-30 09:00 CEST Weekly",
    ]
    assert bob.pk  # bob exists; the page names him
    assert "Shifts of bob" in html


def test_schedules_page_lists_who_is_on_call(signed_in, primary):
    with time_machine.travel(T0, tick=False):
        html = signed_in.get("/incidents/schedules/").content.decode()
    assert rows(html, "schedules") == ["Primary Europe/Paris bob Mon 2026-03-09 08:00 UTC"]


def test_dashboard_shows_the_next_handoffs(signed_in, primary):
    empty = Schedule.objects.create(name="Empty")
    with time_machine.travel(T0, tick=False):
        html = signed_in.get("/").content.decode()
    section = html.split('id="dash-handoffs"')[1].split("</section>")[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", section).split())
    assert "Mon 2026-03-09 08:00 UTC Primary bob admin1" in text
    assert empty.name not in text  # nobody is ever on call there: no handoff to show


def test_page_titles_are_plain_text(signed_in, primary):
    import re

    for url, title in [(f"/incidents/schedules/{primary.pk}/", "Primary"), ("/incidents/schedules/people/bob/", "bob")]:
        html = signed_in.get(url).content.decode()
        [text] = re.findall(r"<title>(.*?)</title>", html, re.S)
        assert title in text and "<" not in text and "Subscribe" not in text
        assert html.count('id="import"') <= 1
