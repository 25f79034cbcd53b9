"""A dangerous step waiting for approval pages the people who may approve it: the on-call approvers
(admins first), else every approver; never whoever started the run; with the link to the step and
no acknowledge link. Nobody to page is said on the timeline and in the log."""

import logging
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail

from incidents.models import LayerParticipant, NotificationRule, Page, Schedule, ScheduleLayer, WebhookEndpoint
from incidents.models.alerts import portal_base_url
from incidents.tasks import run_escalations
from opsportal.celery import app as celery_app
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.conftest import auto, make_runbook, manual

pytestmark = pytest.mark.django_db
HEALTH = auto("http_check", {"path": "/health"}, title="API health")
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday: the first participant's week below


@pytest.fixture(autouse=True)
def eager_tasks():
    """Pages are sent in-process (a real worker sends them in tests/incidents/alerting/test_worker.py)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def people(db):
    """alice and bob respond; carol and dave are admins; everyone has an e-mail address."""
    users = {
        name: UserFactory(username=name, email=f"{name}@example.com", role=role)
        for name, role in (("alice", "responder"), ("bob", "responder"), ("carol", "admin"), ("dave", "admin"))
    }
    UserFactory(username="vic", email="vic@example.com", role="viewer")  # may not approve: never paged
    return users


def on_call(user) -> Schedule:
    schedule = Schedule.objects.create(name="Primary", time_zone="UTC")
    layer = ScheduleLayer.objects.create(
        schedule=schedule, name="Weekly", shift_unit="weeks", rotation_start=date(2026, 3, 2), handoff_time=time(9)
    )
    LayerParticipant.objects.create(layer=layer, user=user, position=0)
    return schedule


def start(callbacks, by, incident=None, title="Restart gunicorn") -> RunbookRun:
    runbook = make_runbook(steps=[manual(title, command="sudo systemctl restart gunicorn", safety="dangerous")])
    with time_machine.travel(T0, tick=False), callbacks(execute=True):
        return RunbookRun.start(runbook, by=by, incident=incident)


def timeline(incident) -> list[str]:
    return list(incident.events.filter(kind="escalation", body__contains="approval").values_list("body", flat=True))


def test_the_on_call_admin_is_paged_with_the_link_to_the_step(people, django_capture_on_commit_callbacks, client):
    on_call(people["dave"])
    incident = IncidentFactory(title="Checkout 5xx", created_by=people["alice"])
    mail.outbox.clear()
    run = start(django_capture_on_commit_callbacks, people["alice"], incident)
    step = run.step_runs.get()
    [message] = mail.outbox
    assert message.to == ["dave@example.com"]
    assert message.subject == (
        f"Approval needed: step 1/1 “Restart gunicorn” of run #{run.pk} (Checkout checks), started by alice, "
        f"for {incident.reference}"
    )
    link = f"{portal_base_url()}/runbooks/runs/{run.pk}/#step-run-{step.pk}"
    assert f"Approve or reject it here: {link}" in message.body
    assert "/incidents/page/" not in message.body and "Acknowledge" not in message.body
    [page] = Page.objects.filter(purpose="approval")
    assert (page.user, page.incident, page.level, page.link, page.via, page.state) == (
        people["dave"],
        incident,
        None,
        link,
        "on call: schedule Primary",
        "sent",
    )
    assert f"Paged dave for approval of step 1/1 “Restart gunicorn” of run #{run.pk}." in timeline(incident)
    client.force_login(people["bob"])
    log = client.get(f"/incidents/{incident.pk}/").content.decode().split('id="notification-log"')[1]
    assert "<td>approval</td>" in log and "<td>dave</td>" in log and "on call: schedule Primary" in log


def test_the_requester_on_call_is_not_paged_every_other_approver_is_admins_first(
    people, django_capture_on_commit_callbacks
):
    on_call(people["alice"])
    run = start(django_capture_on_commit_callbacks, people["alice"])
    assert [m.to for m in mail.outbox] == [["carol@example.com"], ["dave@example.com"], ["bob@example.com"]]
    assert set(Page.objects.filter(purpose="approval").values_list("via", flat=True)) == {"approver"}
    assert not Page.objects.filter(user=people["alice"]).exists()
    assert run.state == "waiting_approval"
    # The approval page is an approval's, not the escalation's: no acknowledge link in its webhook or mail.
    assert Page.objects.filter(purpose="escalation").count() == 0


def test_nobody_else_may_approve_is_a_warning_not_silence(db, django_capture_on_commit_callbacks, caplog):
    alice = UserFactory(username="alice", email="alice@example.com", role="responder")
    incident = IncidentFactory(title="Checkout 5xx", created_by=alice)
    mail.outbox.clear()
    with caplog.at_level(logging.WARNING, logger="incidents.alerting.paging"):
        run = start(django_capture_on_commit_callbacks, alice, incident)
    assert mail.outbox == []
    what = f"step 1/1 “Restart gunicorn” of run #{run.pk}"
    assert timeline(incident) == [
        f"Nobody to page for approval of {what}: nobody other than the requester may approve it."
    ]
    [page] = Page.objects.filter(purpose="approval")
    assert page.state == "unrouted" and page.incident == incident
    assert f"nobody to page for approval of {what}" in caplog.text


def test_approvers_without_an_address_are_named(people, django_capture_on_commit_callbacks):
    for name in ("bob", "carol", "dave"):
        people[name].email = ""
        people[name].save()
    incident = IncidentFactory(title="Checkout 5xx", created_by=people["alice"])
    run = start(django_capture_on_commit_callbacks, people["alice"], incident)
    assert timeline(incident) == [
        f"Nobody to page for approval of step 1/1 “Restart gunicorn” of run #{run.pk}: carol, dave, bob cannot be "
        "reached (no e-mail address or notification rule)."
    ]


def test_a_delayed_approval_page_is_cancelled_once_the_step_is_decided(
    people, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    on_call(people["dave"])
    push = WebhookEndpoint.objects.create(name="dave's phone", url="http://127.0.0.1:9/push", events=[])
    NotificationRule.objects.create(user=people["dave"], channel="webhook", endpoint=push, delay_minutes=2)
    NotificationRule.objects.create(user=people["dave"], channel="email", delay_minutes=10)
    run = start(django_capture_on_commit_callbacks, people["alice"])
    assert mail.outbox == []
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False), django_capture_on_commit_callbacks(execute=True):
        run_escalations()
    webhook = Page.objects.get(channel="webhook")
    assert webhook.state == "sent" and webhook.delivery.event == "approval.paged"
    payload = webhook.delivery.payload
    assert payload["approval_url"].endswith(f"/runbooks/runs/{run.pk}/#step-run-{run.step_runs.get().pk}")
    assert "acknowledge_url" not in payload and payload["incident"] is None

    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        run.approve_step(run.step_runs.get().pk, by=people["bob"])
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False), django_capture_on_commit_callbacks(execute=True):
        run_escalations()
    assert Page.objects.get(channel="email").state == "cancelled"
    assert mail.outbox == []


def test_a_step_that_only_changes_state_pages_nobody(people, target, django_capture_on_commit_callbacks):
    on_call(people["dave"])
    runbook = make_runbook(steps=[{**HEALTH, "safety": "change"}], services=[target])
    with django_capture_on_commit_callbacks(execute=True):
        run = RunbookRun.start(runbook, by=people["alice"])
    assert run.state == "waiting_approval"
    assert mail.outbox == [] and not Page.objects.exists()
