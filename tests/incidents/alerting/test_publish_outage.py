"""Pages, webhook deliveries, notification e-mails and a test alert's resolution queued by a request
while the broker does not answer: the request succeeds (the publish is the bounded one,
opsportal.broker.publish), or says it could not queue, what it queued stays recorded, and the beat
sweeps send it once the broker is back."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from incidents.models import (
    AlertDelivery,
    EscalationContact,
    Incident,
    Page,
    UnqueuedEmail,
    WebhookDelivery,
    WebhookEndpoint,
)
from incidents.tasks import requeue_alert_deliveries, retry_webhook_deliveries, run_escalations
from opsportal import broker
from tests.factories import IncidentFactory, UserFactory
from tests.incidents.alerting.payloads import alert, alertmanager

# Transactional: the on-commit publishes run inside the request, as they do in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def oncall(db):
    person = UserFactory(username="oncall", email="oncall@example.com", role="responder")
    EscalationContact.objects.create(level=1, user=person)
    return person


@pytest.fixture
def hook(receiver):
    server = receiver([200])
    WebhookEndpoint.objects.create(name="chat", url=server.url, events=["incident.created", "incident.status_changed"])
    return server


@pytest.fixture
def published(monkeypatch):
    """The tasks handed to the bounded publish (which still runs)."""
    names = []
    real = broker.publish

    def recording(task, *args, **kwargs):
        names.append(task.name.rsplit(".", 1)[-1])
        return real(task, *args, **kwargs)

    monkeypatch.setattr(broker, "publish", recording)
    return names


def warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_declaring_an_incident_pages_after_the_sweep_when_the_broker_was_down(
    oncall, hook, api, broker_down, published, caplog
):
    with caplog.at_level(logging.WARNING):
        response = api.post("/api/incidents/", {"title": "Checkout down", "severity": "SEV1"}, format="json")
    assert response.status_code == 201, response.content
    incident = Incident.objects.get()
    page = Page.objects.get(incident=incident, user=oncall)
    delivery = WebhookDelivery.objects.get(incident=incident)
    assert published == ["deliver_webhook", "send_page"]
    assert page.state == "pending" and page.attempts == 0 and not mail.outbox
    assert delivery.state == "pending" and delivery.attempts == 0 and not hook.requests
    logged = warnings(caplog)
    assert f"page {page.pk} not queued" in logged and f"webhook delivery {delivery.pk} not queued" in logged
    assert "oncall@example.com" not in logged

    broker_down.back()
    run_escalations()
    retry_webhook_deliveries()
    page.refresh_from_db()
    delivery.refresh_from_db()
    assert page.state == "sent" and page.attempts == 1
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]] and "Acknowledge" in mail.outbox[0].body
    assert delivery.state == "delivered" and len(hook.requests) == 1
    assert hook.requests[0]["headers"]["X-Opsportal-Event"] == "incident.created"


def test_acknowledging_keeps_the_email_and_the_webhook_for_the_sweeps(
    oncall, hook, api, broker_down, published, caplog
):
    broker_down.back()
    incident = IncidentFactory(title="Checkout down", severity="SEV1")  # paged and announced at once
    assert len(mail.outbox) == 1 and len(hook.requests) == 1
    broker_down.down()

    with caplog.at_level(logging.WARNING):
        response = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "acknowledged"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
    assert published[-2:] == ["deliver_webhook", "send_notification_email"]
    delivery = WebhookDelivery.objects.get(event="incident.status_changed")
    assert delivery.state == "pending" and delivery.attempts == 0
    [kept] = UnqueuedEmail.objects.all()
    assert kept.incident == incident and kept.event == "incident.status_changed"
    assert kept.recipients == ["oncall@example.com"] and "acknowledged" in kept.subject
    assert len(mail.outbox) == 1 and len(hook.requests) == 1  # nothing sent while the broker is down
    logged = warnings(caplog)
    assert f"notification e-mail incident.status_changed of incident {incident.pk} to 1 recipient(s)" in logged
    assert "oncall@example.com" not in logged

    broker_down.back()
    run_escalations()
    retry_webhook_deliveries()
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]] * 2
    assert mail.outbox[1].subject == kept.subject
    assert not UnqueuedEmail.objects.exists()
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and len(hook.requests) == 2
    run_escalations()  # sent once: the kept e-mail is gone
    assert len(mail.outbox) == 2


def test_a_redelivery_asked_while_the_broker_is_down_is_sent_by_the_sweep(hook, api_for, broker_down, published):
    broker_down.back()
    incident = IncidentFactory(title="Checkout down")
    delivery = WebhookDelivery.objects.get(incident=incident)
    assert delivery.state == "delivered" and len(hook.requests) == 1
    broker_down.down()

    response = api_for("admin").post("/api/ops/webhooks/redeliver", {"deliveryId": delivery.pk}, format="json")
    assert response.status_code == 202 and response.json()["state"] == "pending"
    assert published[-1] == "deliver_webhook" and len(hook.requests) == 1

    broker_down.back()
    assert retry_webhook_deliveries() == 1
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and len(hook.requests) == 2


def statuses(integration) -> list[str]:
    return [d.payload["status"] for d in AlertDelivery.objects.filter(integration=integration).order_by("id")]


def test_a_test_alert_sent_while_the_broker_is_down_opens_and_resolves_once_it_is_back(
    client, admin_user, integration, broker_down, published
):
    client.force_login(admin_user)
    response = client.post(f"/ops/integrations/{integration.pk}/test-alert/")
    assert response.status_code == 503
    assert "stored but could not be queued" in response.content.decode()
    assert "resolves itself a few minutes later than usual" in response.content.decode()
    assert published == ["process_alert_delivery"]  # its resolution is not even tried
    assert statuses(integration) == ["firing"] and not Incident.objects.exists()

    broker_down.back()
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert requeue_alert_deliveries() == 1  # the firing one; the resolution follows it
    incident = Incident.objects.get()
    assert incident.is_test and incident.status == "resolved"
    assert statuses(integration) == ["firing", "resolved"]
    with time_machine.travel(timezone.now() + timedelta(minutes=20)):
        requeue_alert_deliveries()
    assert statuses(integration) == ["firing", "resolved"]  # resolved once


def test_a_test_alert_whose_resolution_was_not_queued_is_resolved_by_the_sweep(
    client, admin_user, integration, monkeypatch, caplog
):
    real = broker.publish

    def resolution_refused(task, *args, **kwargs):
        if task.name.endswith("resolve_test_alert"):  # the broker went away between the two publishes
            raise OperationalError("[Errno 111] Connection refused")
        return real(task, *args, **kwargs)

    monkeypatch.setattr(broker, "publish", resolution_refused)
    client.force_login(admin_user)
    with caplog.at_level(logging.WARNING):
        response = client.post(f"/ops/integrations/{integration.pk}/test-alert/", follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "Test alert sent (delivery #" in page
    assert "Its resolution could not be queued: it resolves itself a few minutes later than usual" in page
    assert "resolution of test alert" in warnings(caplog) and "the intake sweep sends it" in warnings(caplog)
    incident = Incident.objects.get()
    assert incident.is_test and incident.status == "triggered"

    assert requeue_alert_deliveries() == 0
    incident.refresh_from_db()
    assert incident.status == "triggered"  # not overdue yet: a resolution may still be on its way

    with time_machine.travel(timezone.now() + timedelta(minutes=7)):
        requeue_alert_deliveries()
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert statuses(integration) == ["firing", "resolved"]
    events = list(incident.events.order_by("id").values_list("body", flat=True))
    assert events[-1].endswith("The test alert resolved; a test incident resolves itself.")
    assert "Sent by root with the portal" in incident.alerts.get().annotations["description"]


def test_the_sweep_leaves_test_alerts_their_sender_labelled_to_the_sender(post_alerts):
    """amtool alert add OpsPortalTestAlert opsportal_test=true: Alertmanager resolves it, not the portal."""
    labelled = alert("OpsPortalTestAlert", opsportal_test="true", test_id="e2e-1")
    assert post_alerts(alertmanager(labelled)).status_code == 202
    incident = Incident.objects.get()
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        requeue_alert_deliveries()
    incident.refresh_from_db()
    assert incident.is_test and incident.status == "triggered" and AlertDelivery.objects.count() == 1
