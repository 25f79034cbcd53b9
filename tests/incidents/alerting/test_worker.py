"""The whole path through a real Celery worker on the configured broker (Redis in CI)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from incidents.models import AlertDelivery, Incident, Integration
from opsportal.celery import app as celery_app
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(eager_tasks):
    celery_app.conf.task_always_eager = False
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


def wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_worker_applies_a_stored_delivery(client, worker):
    _, token = Integration.create(name="am", kind="alertmanager")
    response = client.post(
        f"/api/integrations/alertmanager/{token}/", alertmanager(alert()), content_type="application/json"
    )
    assert response.status_code == 202
    assert wait_for(lambda: AlertDelivery.objects.filter(state="processed").exists())
    incident = Incident.objects.get()
    assert incident.alerts.count() == 1 and incident.events.filter(kind="alert").count() == 1


def test_a_test_alert_goes_through_the_worker_and_resolves_itself(client, admin_user, worker, settings):
    settings.TEST_ALERT_RESOLVE_AFTER_SECONDS = 2
    integration, _ = Integration.create(name="am", kind="alertmanager")
    client.force_login(admin_user)
    response = client.post(f"/ops/integrations/{integration.pk}/test-alert/")
    assert response.status_code == 302

    # Stored and queued by the button; the worker opens the incident, then applies the resolution.
    assert wait_for(lambda: Incident.objects.filter(is_test=True).exists())
    incident = Incident.objects.get()
    assert incident.title.startswith("[TEST] ")
    assert wait_for(lambda: Incident.objects.filter(pk=incident.pk, status="resolved").exists())
    assert AlertDelivery.objects.filter(integration=integration, state="processed").count() == 2
    assert incident.events.filter(body__startswith="**Resolved**: `OpsPortalTestAlert`").exists()
    assert incident.alerts.get().status == "resolved"

    page = client.get(f"/ops/integrations/{integration.pk}/").content.decode()
    assert page.count('<tr data-outcome="accepted">') == 2
    assert page.count(f'href="/incidents/{incident.pk}/"') == 2
    assert "hx-trigger" not in page  # nothing pending and the test incident is resolved: no more polling
