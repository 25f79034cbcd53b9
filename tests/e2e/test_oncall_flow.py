"""On call in the browser: a schedule's calendar in the viewer's own time zone, and acknowledging
an incident from the link in the page sent to the on-call person."""

import re
from datetime import time, timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from incidents.models import EscalationContact, Incident, LayerParticipant, Schedule, ScheduleLayer
from opsportal.celery import app as celery_app
from tests.factories import IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def daily_rotation(*people):
    """A UTC schedule handing off every day at 09:00 UTC, the first person on call today."""
    schedule = Schedule.objects.create(name="Primary", time_zone="UTC")
    now = timezone.now()
    start = now.date() if now.time() >= time(9) else now.date() - timedelta(days=1)
    layer = ScheduleLayer.objects.create(
        schedule=schedule, name="Daily", shift_unit="days", rotation_start=start, handoff_time=time(9)
    )
    for i, user in enumerate(people):
        LayerParticipant.objects.create(layer=layer, user=user, position=i)
    return schedule


def test_calendar_shows_handoffs_in_the_browsers_time_zone(new_page, login):
    alice = UserFactory(username="alice", role="responder")
    bob = UserFactory(username="bob", role="responder")
    schedule = daily_rotation(alice, bob)

    page = new_page(timezone_id="Asia/Tokyo")  # UTC+9 all year: 09:00 UTC is 18:00 there
    login(page, "alice")
    page.get_by_role("link", name="On call").click()
    expect(page.locator("#schedules")).to_contain_text("alice")
    page.get_by_role("link", name="Primary").click()
    expect(page.get_by_test_id("viewer-zone")).to_have_text("Asia/Tokyo")
    days = page.locator("#calendar tbody tr")
    expect(days).to_have_count(14)
    # Every day in Tokyo: the previous person until 18:00, the next one from 18:00.
    second = days.nth(1)
    expect(second.locator(".shift")).to_have_count(2)
    expect(second.locator(".shift").nth(0)).to_contain_text("00:00")
    expect(second.locator(".shift").nth(0)).to_contain_text("18:00")
    expect(second.locator(".shift").nth(1)).to_contain_text("18:00")
    expect(second.locator(".shift").nth(1)).to_contain_text("24:00")
    names = [second.locator(".shift").nth(i).get_attribute("data-user") for i in range(2)]
    assert sorted(names) == ["alice", "bob"]

    second.locator(".shift").nth(1).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Shifts of {names[1]}")
    expect(page.locator("#person-shifts")).to_contain_text(schedule.name)
    expect(page.locator("#person-shifts")).to_contain_text("18:00 JST")


def test_acknowledge_from_the_link_in_the_page(new_page, eager):
    alice = UserFactory(username="alice", role="responder", email="alice@example.com")
    EscalationContact.objects.create(level=1, schedule=daily_rotation(alice))
    incident = IncidentFactory(title="Checkout 5xx", severity="SEV1")
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    link = re.search(r"Acknowledge \(one click, then confirm\): \S+(/incidents/page/[^/\s]+/)", message.body).group(1)

    page = new_page()  # not signed in: the link is the credential
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Acknowledge {incident.reference}?")
    incident.refresh_from_db()
    assert incident.status == "triggered"  # opening the link acts on nothing

    page.get_by_role("button", name="Acknowledge as alice").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{incident.reference} acknowledged")
    incident = Incident.objects.get(pk=incident.pk)
    assert (incident.status, incident.commander) == ("acknowledged", alice)
    assert incident.events.filter(kind="status_change", author=alice).exists()

    page.goto(link)  # a second use is refused
    expect(page.locator("#page-link")).to_contain_text("already used")
