"""Paging: escalation to a schedule, nobody to page, notification rules, the notification log and
one-time acknowledge links."""

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail

from incidents.alerting.paging import acknowledge_url
from incidents.metrics import pages_unrouted_total
from incidents.models import (
    EscalationContact,
    LayerParticipant,
    NotificationRule,
    Page,
    Schedule,
    ScheduleLayer,
    WebhookEndpoint,
)
from incidents.tasks import run_escalations
from tests.factories import IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday: bob's week in the rotation below


@pytest.fixture
def rotation(db):
    people = [
        UserFactory(username=name, email=f"{name}@example.com", role="responder") for name in ("admin1", "alice", "bob")
    ]
    schedule = Schedule.objects.create(name="Primary", time_zone="Europe/Paris")
    layer = ScheduleLayer.objects.create(
        schedule=schedule,
        name="Weekly",
        shift_unit="weeks",
        rotation_start=date(2026, 2, 16),
        handoff_time=time(9),
    )
    for i, user in enumerate(people):
        LayerParticipant.objects.create(layer=layer, user=user, position=i)
    EscalationContact.objects.create(level=1, schedule=schedule)
    return schedule


def declare(callbacks, **fields):
    with time_machine.travel(T0, tick=False), callbacks(execute=True):
        return IncidentFactory(title="Checkout 5xx", severity="SEV1", **fields)


def link_in(message) -> str:
    return re.search(r"Acknowledge \(one click, then confirm\): \S+(/incidents/page/[^/\s]+/)", message.body).group(1)


def test_escalation_to_a_schedule_pages_whoever_is_on_call(rotation, django_capture_on_commit_callbacks):
    incident = declare(django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    assert "[SEV1] INC-" in mail.outbox[0].subject
    assert "/incidents/page/" in mail.outbox[0].body
    [page] = Page.objects.filter(incident=incident)
    assert (page.user.username, page.via, page.channel, page.state, page.level) == (
        "bob",
        "schedule Primary",
        "email",
        "sent",
        1,
    )


def test_nobody_on_call_writes_a_warning_and_counts_it(rotation, django_capture_on_commit_callbacks):
    LayerParticipant.objects.all().delete()
    before = pages_unrouted_total.labels(level="L1")._value.get()
    incident = declare(django_capture_on_commit_callbacks)
    assert mail.outbox == []
    warning = incident.events.get(kind="escalation")
    assert warning.body == "Nobody to page at L1: schedule Primary has no one on call."
    [page] = Page.objects.filter(incident=incident)
    assert page.state == "unrouted" and page.error == "schedule Primary has no one on call"
    assert pages_unrouted_total.labels(level="L1")._value.get() - before == 1


def test_no_contacts_at_all_is_said_too(django_capture_on_commit_callbacks):
    incident = declare(django_capture_on_commit_callbacks)
    assert incident.events.get(kind="escalation").body == "Nobody to page at L1: no escalation contacts at L1."


def test_dashboard_lists_unpaged_incidents_and_schedules_without_anyone(rotation, client, admin_user):
    LayerParticipant.objects.all().delete()
    incident = IncidentFactory(title="Nobody hears this", severity="SEV1")
    client.force_login(admin_user)
    body = client.get("/").content.decode()
    assert "Nobody paged" in body and f"{incident.reference}</a> (L1)" in body
    assert "<td>Primary</td>" in body and "nobody" in body


# --- notification rules ------------------------------------------------------------------------


def test_rules_page_by_email_at_once_and_webhook_later_unless_acknowledged(
    rotation, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    bob = rotation.layers.get().participants.get(user__username="bob").user
    push = WebhookEndpoint.objects.create(name="bob's phone", url="http://127.0.0.1:9/push", events=[])
    NotificationRule.objects.create(user=bob, channel="email", delay_minutes=0)
    NotificationRule.objects.create(user=bob, channel="webhook", endpoint=push, delay_minutes=2)
    incident = declare(django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    webhook_page = Page.objects.get(incident=incident, channel="webhook")
    assert webhook_page.state == "pending" and webhook_page.due_at == T0 + timedelta(minutes=2)

    with time_machine.travel(T0 + timedelta(minutes=2), tick=False), django_capture_on_commit_callbacks(execute=True):
        run_escalations()
    webhook_page.refresh_from_db()
    assert webhook_page.state == "sent" and webhook_page.delivery.endpoint == push
    assert webhook_page.delivery.payload["acknowledge_url"].startswith("http")

    other = declare(django_capture_on_commit_callbacks)
    other.transition_to("acknowledged", by=bob)
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False), django_capture_on_commit_callbacks(execute=True):
        run_escalations()
    assert Page.objects.get(incident=other, channel="webhook").state == "cancelled"


def test_failed_email_is_retried_and_shown_on_the_page_row(rotation, django_capture_on_commit_callbacks, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("incidents.alerting.paging.send_mail", refuse)
    incident = declare(django_capture_on_commit_callbacks)
    page = Page.objects.get(incident=incident)
    assert page.state == "pending" and page.attempts == 1
    assert page.error == "ConnectionRefusedError: smtp down"
    assert page.due_at == T0 + timedelta(seconds=30)  # the webhooks' backoff

    monkeypatch.undo()
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False), django_capture_on_commit_callbacks(execute=True):
        run_escalations()
    page.refresh_from_db()
    assert page.state == "sent" and page.attempts == 2
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]


# --- acknowledge links -------------------------------------------------------------------------


@pytest.fixture
def paged(rotation, django_capture_on_commit_callbacks):
    incident = declare(django_capture_on_commit_callbacks)
    return incident, link_in(mail.outbox[0])


def test_get_shows_a_confirmation_and_does_not_act(paged, client):
    incident, link = paged
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        response = client.get(link)
    assert response.status_code == 200
    assert b"Acknowledge as bob" in response.content and b'method="post"' in response.content
    incident.refresh_from_db()
    assert incident.status == "triggered"
    assert Page.objects.get(incident=incident).link_used_at is None


def test_post_acknowledges_as_the_person_paged_and_makes_them_commander(paged, client):
    incident, link = paged
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        response = client.post(link)
    assert response.status_code == 200
    assert b"acknowledged" in response.content
    incident.refresh_from_db()
    assert incident.status == "acknowledged" and incident.commander.username == "bob"
    entry = incident.events.get(kind="status_change", body__contains="acknowledged")
    assert entry.author.username == "bob" and "L1 page (email link)" in entry.body
    assert incident.events.filter(
        author__username="bob", body="bob acknowledged the page and became commander."
    ).exists()
    assert incident.sla.acknowledged_at == T0 + timedelta(minutes=5)


def test_link_works_once(paged, client):
    _incident, link = paged
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        assert client.post(link).status_code == 200
        again = client.post(link)
    assert again.status_code == 409 and b"already used" in again.content


def test_expired_link_does_not_act(paged, client):
    incident, link = paged
    with time_machine.travel(T0 + timedelta(hours=1, seconds=1), tick=False):
        response = client.post(link)
    assert response.status_code == 400 and b"expired" in response.content
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_link_expiry_is_configurable(paged, client, settings):
    _incident, link = paged
    settings.PAGE_LINK_MAX_AGE_SECONDS = 600
    with time_machine.travel(T0 + timedelta(minutes=11), tick=False):
        assert client.post(link).status_code == 400


def test_someone_else_signed_in_is_refused(paged, client, responder2):
    incident, link = paged
    client.force_login(UserFactory(username="mallory", role="responder"))
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        response = client.post(link)
    assert response.status_code == 403 and b"sent to bob" in response.content
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_tampered_link_is_refused(paged, client):
    incident, link = paged
    token = link.split("/")[-2]
    forged = link.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        assert client.post(forged).status_code == 400
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_link_after_someone_else_acknowledged_acts_no_more(paged, client, responder):
    incident, link = paged
    incident.transition_to("acknowledged", by=responder)
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        response = client.post(link)
    assert response.status_code == 200 and b"already acknowledged" in response.content
    incident.refresh_from_db()
    assert incident.commander is None  # alice was not paged: no commander by acknowledgement


def test_incident_page_shows_the_notification_log(paged, client, viewer):
    incident, _link = paged
    client.force_login(viewer)
    body = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Notification log" in body and "schedule Primary" in body and "bob" in body


def test_dashboard_shows_who_is_on_call(rotation, client, viewer):
    client.force_login(viewer)
    with time_machine.travel(T0, tick=False):
        body = client.get("/").content.decode()
    assert "<td>Primary</td>" in body and "<strong>bob</strong>" in body
    assert "Nobody paged" not in body


def test_an_email_only_contact_gets_the_incident_link_and_no_acknowledge_link(
    rotation, django_capture_on_commit_callbacks, client
):
    """A raw address has no account the link could be bound to, so its page cannot acknowledge."""
    EscalationContact.objects.create(level=1, email="noc@partner.example")
    incident = declare(django_capture_on_commit_callbacks)
    [noc] = [m for m in mail.outbox if m.to == ["noc@partner.example"]]
    assert "/incidents/page/" not in noc.body and "Acknowledge" not in noc.body
    assert f"/incidents/{incident.pk}/" in noc.body
    page = Page.objects.get(incident=incident, address="noc@partner.example")
    assert page.user is None and page.state == "sent"
    assert acknowledge_url(page) == ""
    # bob, paged through the schedule, still gets his own link.
    [bobs] = [m for m in mail.outbox if m.to == ["bob@example.com"]]
    assert "Acknowledge (one click, then confirm)" in bobs.body
