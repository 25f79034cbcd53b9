"""Maintenance mode: 503 + Retry-After for pages and the API, except the probes, the metrics, the
ops API and console, and the alert intake, which still stores alerts."""

import pytest
from django.core.cache import cache

from incidents.models import Alert
from ops import maintenance
from ops.models import MaintenanceSwitch
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


@pytest.fixture
def maintenance_on(admin_user):
    MaintenanceSwitch.set(True, by=admin_user)
    maintenance.remember(True)  # what the on_commit hook does once the switch is committed
    yield
    maintenance.remember(False)


@pytest.mark.parametrize("path", ["/", "/incidents/", "/runbooks/", "/status/", "/api/incidents/", "/reviews/"])
def test_pages_and_api_answer_503_with_retry_after(client, admin_user, maintenance_on, path, settings):
    client.force_login(admin_user)
    response = client.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.MAINTENANCE_RETRY_AFTER)
    assert "maintenance" in response.content.decode()


def test_the_api_answers_json(api_for, maintenance_on):
    response = api_for("responder").get("/api/incidents/")
    assert response.status_code == 503 and response.json()["detail"].startswith("Ops Portal is in maintenance")


@pytest.mark.parametrize("path", ["/health", "/api/ops/maintenance", "/api/ops/tasks", "/admin/"])
def test_exempt_paths_still_answer(client, admin_user, maintenance_on, path):
    client.force_login(admin_user)
    assert client.get(path).status_code == 200


def test_probes_and_metrics_are_exempt(client, maintenance_on, settings):
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code != 503 or "failing" in client.get("/ready").json()
    settings.METRICS_ENABLED = True
    assert client.get("/metrics").status_code == 200


def test_alerts_are_still_stored(client, maintenance_on, django_capture_on_commit_callbacks):
    import json

    from incidents.models import Integration
    from opsportal.celery import app

    _, token = Integration.create(name="prod-alertmanager", kind="alertmanager")
    app.conf.task_always_eager = True  # the intake's processing runs in-process here
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/api/integrations/alertmanager/{token}/",
                json.dumps(alertmanager(alert(instance="db-1"))),
                content_type="application/json",
            )
    finally:
        app.conf.task_always_eager = False
    assert response.status_code == 202
    assert Alert.objects.filter(alertname="APIHigh5xxRate").exists()


def test_an_admin_turns_it_off_through_the_ops_api(api_for, client, maintenance_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert api_for("admin").post("/api/ops/maintenance", {"enabled": False}, format="json").status_code == 200
    assert client.get("/status/").status_code == 200


def test_it_survives_a_cache_flush(client, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        MaintenanceSwitch.set(True, by=admin_user)
    cache.delete(maintenance.CACHE_KEY)  # what a flush does to the copy
    try:
        assert client.get("/status/").status_code == 503
        assert cache.get(maintenance.CACHE_KEY) == "on"  # refilled from the row
    finally:
        maintenance.remember(False)


def test_off_by_default(client):
    cache.delete(maintenance.CACHE_KEY)
    assert client.get("/status/").status_code == 200
