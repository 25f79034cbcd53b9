"""On-call schedules: rotation and layer math (DST, restrictions, overrides) and the API."""

from datetime import UTC, date, datetime, time

import pytest
import time_machine

from incidents.models import LayerParticipant, Schedule, ScheduleLayer, ScheduleOverride
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PARIS = "Europe/Paris"  # CET → CEST on Sunday 2026-03-29 at 02:00, back on 2026-10-25 at 03:00


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def people(db):
    return [UserFactory(username=name, role="responder") for name in ("ana", "ben", "cy")]


def make_layer(schedule, people, **fields) -> ScheduleLayer:
    defaults = {
        "name": "Base",
        "priority": 1,
        "shift_length": 1,
        "shift_unit": "weeks",
        "rotation_start": date(2026, 3, 23),  # a Monday, the week before the DST change
        "handoff_time": time(9, 0),
    }
    layer = ScheduleLayer.objects.create(schedule=schedule, **{**defaults, **fields})
    for i, user in enumerate(people):
        LayerParticipant.objects.create(layer=layer, user=user, position=i)
    return layer


@pytest.fixture
def weekly(people):
    schedule = Schedule.objects.create(name="Primary", time_zone=PARIS)
    make_layer(schedule, people)
    return schedule


def on_call(api, schedule, at: str):
    response = api.get(f"/api/schedules/{schedule.pk}/oncall/", {"at": at})
    assert response.status_code == 200, response.content
    on = response.json()["on_call"]
    return on and on["user"]


def test_weekly_handoff_stays_at_nine_local_across_the_spring_dst_change(api, weekly):
    # First handoff: Monday 23 March 09:00 CET = 08:00 UTC.
    assert on_call(api, weekly, "2026-03-23T07:59:59Z") is None  # before the rotation starts
    assert on_call(api, weekly, "2026-03-23T08:00:00Z") == "ana"
    # The next Monday is after the change: 09:00 CEST = 07:00 UTC, one hour earlier in UTC.
    assert on_call(api, weekly, "2026-03-30T06:59:59Z") == "ana"
    assert on_call(api, weekly, "2026-03-30T07:00:00Z") == "ben"
    assert on_call(api, weekly, "2026-04-06T09:00:00+02:00") == "cy"
    assert on_call(api, weekly, "2026-04-13T09:00:00+02:00") == "ana"  # round the rotation


def test_shifts_across_dst_change_are_shorter_and_start_at_local_handoff(api, weekly):
    response = api.get(
        f"/api/schedules/{weekly.pk}/shifts/", {"start": "2026-03-23T00:00:00Z", "end": "2026-04-06T12:00:00Z"}
    )
    assert response.status_code == 200, response.content
    shifts = response.json()["shifts"]
    assert [(s["user"], s["start"], s["end"]) for s in shifts] == [
        ("ana", "2026-03-23T08:00:00+00:00", "2026-03-30T07:00:00+00:00"),  # 167 hours: the lost hour
        ("ben", "2026-03-30T07:00:00+00:00", "2026-04-06T07:00:00+00:00"),
        ("cy", "2026-04-06T07:00:00+00:00", "2026-04-06T12:00:00+00:00"),
    ]


def test_autumn_change_keeps_nine_local(api, people):
    schedule = Schedule.objects.create(name="Daily", time_zone=PARIS)
    make_layer(schedule, people[:2], shift_unit="days", rotation_start=date(2026, 10, 24))
    # Saturday 09:00 CEST = 07:00 UTC; Sunday (after 03:00 → 02:00) 09:00 CET = 08:00 UTC.
    assert on_call(api, schedule, "2026-10-25T07:59:59Z") == "ana"
    assert on_call(api, schedule, "2026-10-25T08:00:00Z") == "ben"


def test_hour_shifts_are_elapsed_time_across_dst(api, people):
    schedule = Schedule.objects.create(name="Twelve hours", time_zone=PARIS)
    make_layer(schedule, people[:2], shift_unit="hours", shift_length=12, rotation_start=date(2026, 3, 28))
    # 09:00 CET Saturday = 08:00 UTC; twelve real hours later 20:00 UTC, then 08:00 UTC (10:00 CEST).
    assert on_call(api, schedule, "2026-03-28T19:59:59Z") == "ana"
    assert on_call(api, schedule, "2026-03-28T20:00:00Z") == "ben"
    assert on_call(api, schedule, "2026-03-29T08:00:00Z") == "ana"


def test_business_hours_layer_wins_inside_its_window_only(api, weekly, people):
    dana = UserFactory(username="dana", role="responder")
    make_layer(
        weekly,
        [dana],
        name="Business hours",
        priority=2,
        restrict_weekdays=[0, 1, 2, 3, 4],
        restrict_start=time(9, 0),
        restrict_end=time(17, 0),
    )
    assert on_call(api, weekly, "2026-04-01T09:00:00+02:00") == "dana"  # Wednesday inside the window
    assert on_call(api, weekly, "2026-04-01T16:59:59+02:00") == "dana"
    assert on_call(api, weekly, "2026-04-01T17:00:00+02:00") == "ben"  # after hours: the base layer
    assert on_call(api, weekly, "2026-04-04T10:00:00+02:00") == "ben"  # Saturday
    shifts = api.get(
        f"/api/schedules/{weekly.pk}/shifts/",
        {"start": "2026-04-01T00:00:00+02:00", "end": "2026-04-02T00:00:00+02:00"},
    ).json()["shifts"]
    assert [(s["user"], s["source"], s["start"], s["end"]) for s in shifts] == [
        ("ben", "Base", "2026-03-31T22:00:00+00:00", "2026-04-01T07:00:00+00:00"),
        ("dana", "Business hours", "2026-04-01T07:00:00+00:00", "2026-04-01T15:00:00+00:00"),
        ("ben", "Base", "2026-04-01T15:00:00+00:00", "2026-04-01T22:00:00+00:00"),
    ]


def test_overnight_window_belongs_to_the_day_it_opened(api, people):
    schedule = Schedule.objects.create(name="Nights", time_zone="UTC")
    make_layer(
        schedule,
        people[:1],
        shift_unit="days",
        restrict_weekdays=[4],  # Friday night only
        restrict_start=time(22, 0),
        restrict_end=time(6, 0),
    )
    assert on_call(api, schedule, "2026-04-03T23:00:00Z") == "ana"  # Friday 23:00
    assert on_call(api, schedule, "2026-04-04T05:59:00Z") == "ana"  # Saturday 05:59, still Friday's night
    assert on_call(api, schedule, "2026-04-04T06:00:00Z") is None
    assert on_call(api, schedule, "2026-04-04T23:00:00Z") is None  # Saturday night


def test_override_wins_over_every_layer_and_newest_override_wins(api, weekly, people):
    _ana, ben, cy = people
    ScheduleOverride.objects.create(schedule=weekly, user=cy, starts_at=utc(2026, 3, 25), ends_at=utc(2026, 3, 26))
    ScheduleOverride.objects.create(
        schedule=weekly, user=ben, starts_at=utc(2026, 3, 25, 12), ends_at=utc(2026, 3, 25, 13)
    )
    assert on_call(api, weekly, "2026-03-24T23:59:59Z") == "ana"
    assert on_call(api, weekly, "2026-03-25T00:00:00Z") == "cy"
    assert on_call(api, weekly, "2026-03-25T12:30:00Z") == "ben"
    assert on_call(api, weekly, "2026-03-26T00:00:00Z") == "ana"
    shifts = api.get(
        f"/api/schedules/{weekly.pk}/shifts/", {"start": "2026-03-24T00:00:00Z", "end": "2026-03-27T00:00:00Z"}
    ).json()["shifts"]
    assert [(s["user"], s["source"]) for s in shifts] == [
        ("ana", "Base"),
        ("cy", "override"),
        ("ben", "override"),
        ("cy", "override"),
        ("ana", "Base"),
    ]


def test_on_call_now_with_frozen_time(api, weekly):
    with time_machine.travel(utc(2026, 4, 8, 12), tick=False):
        response = api.get("/api/schedules/oncall/")
        assert response.status_code == 200
        assert response.json()["schedules"] == [
            {
                "id": weekly.pk,
                "schedule": "Primary",
                "on_call": {
                    "user": "cy",
                    "source": "Base",
                    "start": "2026-04-06T07:00:00+00:00",
                    "end": "2026-04-13T07:00:00+00:00",
                },
            }
        ]
        listed = api.get("/api/schedules/").json()["results"][0]
        assert listed["on_call_now"]["user"] == "cy"
        assert listed["layers"][0]["participants"] == ["ana", "ben", "cy"]


def test_schedule_without_layers_has_nobody(api):
    schedule = Schedule.objects.create(name="Empty")
    assert on_call(api, schedule, "2026-04-01T00:00:00Z") is None


# --- API input and roles ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [({"at": "yesterday"}, "at"), ({"at": "2026-13-01T00:00:00Z"}, "at")],
)
def test_bad_moment_is_400_naming_the_field(api, weekly, params, field):
    response = api.get(f"/api/schedules/{weekly.pk}/oncall/", params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-04-02T00:00:00Z", "end": "2026-04-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "end"),
        ({"start": "soon"}, "start"),
    ],
)
def test_bad_period_is_400_naming_the_field(api, weekly, params, field):
    response = api.get(f"/api/schedules/{weekly.pk}/shifts/", params)
    assert response.status_code == 400
    assert field in response.json()


def test_admin_creates_schedule_and_layer(api_for, people):
    api = api_for("admin")
    response = api.post("/api/schedules/", {"name": "Payments", "time_zone": "America/New_York"}, format="json")
    assert response.status_code == 201, response.content
    schedule_id = response.json()["id"]
    layer = {
        "schedule": schedule_id,
        "name": "Weekly",
        "shift_unit": "weeks",
        "shift_length": 1,
        "rotation_start": "2026-03-02",
        "handoff_time": "10:00",
        "participants": ["ben", "ana"],
    }
    response = api.post("/api/schedule-layers/", layer, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["participants"] == ["ben", "ana"]
    # US DST starts 8 March 2026: the 9 March handoff is 10:00 EDT = 14:00 UTC (it was 15:00 UTC).
    assert on_call(api, Schedule.objects.get(pk=schedule_id), "2026-03-09T13:59:59Z") == "ben"
    assert on_call(api, Schedule.objects.get(pk=schedule_id), "2026-03-09T14:00:00Z") == "ana"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"participants": ["nobody-by-that-name"]}, "participants"),
        ({"restrict_start": "09:00"}, "restrict_end"),
        ({"restrict_start": "09:00", "restrict_end": "09:00"}, "restrict_end"),
        ({"restrict_weekdays": [7]}, "restrict_weekdays"),
        ({"restrict_weekdays": [1, 1]}, "restrict_weekdays"),
        ({"shift_length": 0}, "shift_length"),
        ({"shift_unit": "months"}, "shift_unit"),
        ({"priority": 1}, "priority"),
        ({"handoff_time": "25:00"}, "handoff_time"),
    ],
)
def test_bad_layer_is_400_naming_the_field(api_for, weekly, body, field):
    layer = {
        "schedule": weekly.pk,
        "name": "Second",
        "priority": 2,
        "shift_unit": "days",
        "shift_length": 1,
        "rotation_start": "2026-03-02",
        "handoff_time": "10:00",
        "participants": ["ana"],
        **body,
    }
    response = api_for("admin").post("/api/schedule-layers/", layer, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ScheduleLayer.objects.count() == 1


def test_unknown_time_zone_is_400(api_for):
    response = api_for("admin").post("/api/schedules/", {"name": "X", "time_zone": "Mars/Olympus"}, format="json")
    assert response.status_code == 400
    assert "time_zone" in response.json()


@pytest.mark.parametrize(("role", "status"), [("anonymous", 403), ("viewer", 403), ("responder", 403), ("admin", 201)])
def test_only_admins_create_schedules(api_for, role, status):
    response = api_for(role).post("/api/schedules/", {"name": "New", "time_zone": "UTC"}, format="json")
    assert response.status_code == status
    assert Schedule.objects.filter(name="New").exists() == (status == 201)


@pytest.mark.parametrize(
    ("role", "status", "by"), [("viewer", 403, None), ("responder", 201, "alice"), ("admin", 201, "root")]
)
def test_responders_add_overrides(api_for, weekly, people, role, status, by):
    body = {"schedule": weekly.pk, "user": "cy", "starts_at": "2026-04-01T00:00:00Z", "ends_at": "2026-04-02T00:00:00Z"}
    response = api_for(role).post("/api/schedule-overrides/", body, format="json")
    assert response.status_code == status, response.content
    if by:
        assert response.json()["created_by"] == by


def test_override_ending_before_it_starts_is_400(api, weekly, people):
    body = {"schedule": weekly.pk, "user": "cy", "starts_at": "2026-04-02T00:00:00Z", "ends_at": "2026-04-01T00:00:00Z"}
    response = api.post("/api/schedule-overrides/", body, format="json")
    assert response.status_code == 400
    assert "ends_at" in response.json()
    assert not ScheduleOverride.objects.exists()


def test_viewer_reads_on_call(api_for, weekly):
    assert api_for("viewer").get(f"/api/schedules/{weekly.pk}/oncall/").status_code == 200
    assert api_for("anonymous").get(f"/api/schedules/{weekly.pk}/oncall/").status_code == 403


def test_schedule_list_query_count_is_constant(api, people, django_assert_max_num_queries):
    def build(n):
        for i in range(n):
            schedule = Schedule.objects.create(name=f"S{n}-{i}", time_zone=PARIS)
            make_layer(schedule, people)
            ScheduleOverride.objects.create(
                schedule=schedule, user=people[0], starts_at=utc(2020, 1, 1), ends_at=utc(2030, 1, 1)
            )

    build(1)
    with django_assert_max_num_queries(12) as one:
        assert api.get("/api/schedules/oncall/").status_code == 200
    build(5)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = api.get("/api/schedules/oncall/")
    assert len(response.json()["schedules"]) == 6
