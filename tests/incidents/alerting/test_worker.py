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
