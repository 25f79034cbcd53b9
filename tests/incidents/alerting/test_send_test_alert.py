"""The "send a test alert" button: a realistic payload through the real intake, a [TEST] incident
that pages nobody, starts no first look and resolves itself. Tasks run eagerly here (the
resolution with them); test_worker.py runs the same through a real worker."""

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.utils import timezone

from incidents import dashboard
from incidents.alerting import sources
from incidents.choices import AlertStatus
from incidents.models import (
    AlertDelivery,
    EscalationContact,
    Incident,
    IntakeEvent,
    Integration,
    Page,
    PostIncidentReview,
    SlaClock,
    WebhookDelivery,
    WebhookEndpoint,
)
from incidents.signals import first_look_requested
from tests.factories import UserFactory
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


@pytest.fixture
def first_looks():
    asked = []

    def record(sender, incident, alertname, **kwargs):
        asked.append(alertname)

    first_look_requested.connect(record, dispatch_uid="test-first-looks")
    yield asked
    first_look_requested.disconnect(dispatch_uid="test-first-looks")


@pytest.fixture
def on_call(db):
    """Somebody L1 would page, and an endpoint that hears of every new incident."""
    EscalationContact.objects.create(level=1, user=UserFactory(username="oncall", email="oncall@example.com"))
    WebhookEndpoint.objects.create(name="chat", url="http://127.0.0.1:9/hook", events=["incident.created"])


def send(client, integration):
    return client.post(f"/ops/integrations/{integration.pk}/test-alert/")


@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
def test_a_test_alert_opens_a_test_incident_that_pages_nobody_and_resolves_itself(
    client, admin_user, kind, on_call, first_looks, django_capture_on_commit_callbacks
):
    integration, _ = Integration.create(name=f"prod-{kind}", kind=kind)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, integration)
    assert response.status_code == 302 and response["Location"] == f"/ops/integrations/{integration.pk}/"

    incident = Incident.objects.get()
    assert incident.is_test and incident.title == f"[TEST] Test alert from integration prod-{kind}"
    # Eagerly, the scheduled "resolved" notification has already gone through the intake too.
    firing, resolved = AlertDelivery.objects.filter(integration=integration).order_by("id")
    assert (firing.payload["status"], resolved.payload["status"]) == ("firing", "resolved")
    assert firing.payload["alerts"][0]["labels"]["opsportal_test"] == "true"
    assert firing.payload["version"] == ("4" if kind == "alertmanager" else "1")
    assert incident.status == "resolved"
    bodies = list(incident.events.order_by("id").values_list("body", flat=True))
    assert "**Test incident**, opened by a test alert" in bodies[1] and "nobody is paged" in bodies[1]
    assert any(b.startswith("**Firing**: `OpsPortalTestAlert`") for b in bodies)
    assert bodies[-1].endswith("The test alert resolved; a test incident resolves itself.")
    assert "Sent by root with the portal" in incident.alerts.get().annotations["description"]
    # Nobody paged, no clock, no notification, no first look, no review to write.
    assert Page.objects.count() == 0 and WebhookDelivery.objects.count() == 0
    assert not SlaClock.objects.filter(pk=incident.pk).exists()
    assert first_looks == [] and not PostIncidentReview.objects.exists()

    page = client.get(response["Location"]).content.decode()
    assert "Test alert sent (delivery #" in page
    assert page.count(f'href="/incidents/{incident.pk}/"') == 2  # both deliveries link the test incident
    assert '<span class="badge test">Test</span>' in page


def test_a_real_alert_still_pages_and_starts_a_first_look(
    post_alerts, on_call, first_looks, integration, django_capture_on_commit_callbacks
):
    """The control: what a test incident skips, a real one does."""
    with django_capture_on_commit_callbacks(execute=True):
        assert post_alerts(alertmanager(alert())).status_code == 202
    incident = Incident.objects.get()
    assert not incident.is_test
    assert Page.objects.filter(incident=incident).exists()
    assert SlaClock.objects.filter(pk=incident.pk).exists()
    assert first_looks == ["APIHigh5xxRate"]


def test_an_alert_labelled_as_a_test_by_its_sender_is_a_test_too(post_alerts, on_call):
    """amtool alert add OpsPortalTestAlert opsportal_test=true tests the whole chain from Alertmanager."""
    assert post_alerts(alertmanager(alert("OpsPortalTestAlert", opsportal_test="true"))).status_code == 202
    incident = Incident.objects.get()
    assert incident.is_test and Page.objects.count() == 0


def test_the_test_incident_shows_as_a_test_on_the_list_and_its_page(client, admin_user, integration):
    client.force_login(admin_user)
    send(client, integration)
    incident = Incident.objects.get()
    assert 'title="Opened by a test alert' in client.get("/incidents/").content.decode()
    detail = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert 'data-testid="test-badge"' in detail and "[TEST] Test alert" in detail


def test_each_click_opens_its_own_test_incident(client, admin_user, integration, settings):
    client.force_login(admin_user)
    send(client, integration)
    send(client, integration)
    assert Incident.objects.filter(is_test=True).count() == 2
    assert IntakeEvent.objects.filter(outcome="duplicate").count() == 0


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("responder", 403), ("admin", 302)])
def test_only_admins_send_test_alerts(client, user_for, role, status, integration):
    client.force_login(user_for(role))
    assert send(client, integration).status_code == status
    assert Incident.objects.exists() == (role == "admin")


def test_anonymous_users_are_sent_to_sign_in(client, integration):
    response = send(client, integration)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not AlertDelivery.objects.exists()


def test_sending_needs_a_post_with_a_csrf_token(admin_user, integration):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get(f"/ops/integrations/{integration.pk}/test-alert/").status_code == 405
    assert send(client, integration).status_code == 403
    assert not AlertDelivery.objects.exists()


def test_an_unknown_integration_is_a_404(client, admin_user):
    client.force_login(admin_user)
    assert client.post("/ops/integrations/999999/test-alert/").status_code == 404
    assert client.post("/ops/integrations/nope/test-alert/").status_code == 404


@pytest.fixture
def plain_source():
    """A source registered without a test payload (a third-party source that brings none)."""
    source = sources.register(sources.Source(slug="plain", label="Plain JSON", normalise=lambda raw: None))
    yield source
    sources.unregister("plain")


def test_a_source_without_a_test_payload_says_so(client, admin_user, plain_source):
    integration, _ = Integration.create(name="plain", kind="plain")
    client.force_login(admin_user)
    page = client.get(f"/ops/integrations/{integration.pk}/").content.decode()
    assert "The Plain JSON source cannot write a test alert." in page and "Send a test alert</button>" not in page
    response = send(client, integration)
    assert response.status_code == 400
    assert "cannot write a test alert" in response.content.decode()
    assert not AlertDelivery.objects.exists()


def test_a_test_payload_the_intake_refuses_is_a_400_and_logged(client, admin_user, monkeypatch, integration):
    source = sources.get("alertmanager")
    broken = sources.Source(
        slug=source.slug,
        label=source.label,
        normalise=source.normalise,
        test_payload=lambda test: {"version": "9"},
    )
    monkeypatch.setitem(sources._registry, "alertmanager", broken)
    client.force_login(admin_user)
    response = send(client, integration)
    assert response.status_code == 400
    assert "The intake refused the test payload: version:" in response.content.decode()
    assert IntakeEvent.objects.get().outcome == "refused"


def test_every_registered_source_writes_a_payload_it_accepts():
    """A source's test payload must pass its own validation, firing and resolved."""
    for slug in sources.slugs():
        source = sources.get(slug)
        if source.test_payload is None:
            continue
        for status in AlertStatus.values:
            test = sources.TestAlert("0" * 32, status, datetime(2026, 1, 1, tzinfo=UTC), None, "x", "http://p/")
            batch = source.normalise(source.test_payload(test))
            assert batch.alerts[0].labels["opsportal_test"] == "true" and batch.alerts[0].status == status


def test_test_incidents_stay_out_of_mttr(client, admin_user, integration):
    client.force_login(admin_user)
    send(client, integration)
    assert Incident.objects.get().status == "resolved"
    week = dashboard.response_times(timezone.now())[0]
    assert (week["count"], week["mttr"]) == (0, None)
