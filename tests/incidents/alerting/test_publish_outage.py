"""Pages, webhook deliveries and notification e-mails queued by a request while the broker does not
answer: the request succeeds (the publish is the bounded one, opsportal.broker.publish), what it
queued stays recorded, and the beat sweeps send it once the broker is back."""

import logging

import pytest
from django.core import mail

from incidents.models import EscalationContact, Incident, Page, UnqueuedEmail, WebhookDelivery, WebhookEndpoint
from incidents.tasks import retry_webhook_deliveries, run_escalations
from opsportal import broker
from tests.factories import IncidentFactory, UserFactory

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
