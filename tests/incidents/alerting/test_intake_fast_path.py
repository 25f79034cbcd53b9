"""The intake request's own work: one INSERT and one publish. The integration comes from the
shared cache by token hash, and any change to it (rotation, edit, deletion) is seen at once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import AlertDelivery, Integration
from incidents.tasks import process_alert_delivery
from tests.incidents.alerting.payloads import alert, alertmanager


@pytest.fixture
def published(monkeypatch):
    """The messages the intake publishes (no worker: only the request's own work is measured)."""
    sent = []
    monkeypatch.setattr(process_alert_delivery, "apply_async", lambda args, *rest, **kwargs: sent.append(args))
    return sent


@pytest.mark.django_db(transaction=True)  # autocommit, as under gunicorn: no test transaction around it
def test_a_post_is_one_insert_once_the_token_is_cached(post_alerts, published):
    with CaptureQueriesContext(connection) as first:
        assert post_alerts(alertmanager(alert(instance="a"))).status_code == 202
    with CaptureQueriesContext(connection) as second:
        assert post_alerts(alertmanager(alert(instance="b"))).status_code == 202
    assert [q["sql"].split()[0] for q in first] == ["SELECT", "INSERT"]  # the token's row, then the payload
    assert [q["sql"].split()[0] for q in second] == ["INSERT"]
    assert len(published) == 2 and AlertDelivery.objects.count() == 2


@pytest.mark.django_db
def test_a_rotated_token_stops_working_at_once(post_alerts, integration_and_token, published):
    integration, old = integration_and_token
    assert post_alerts(alertmanager(alert(instance="a")), token=old).status_code == 202  # now cached
    new = Integration.objects.get(pk=integration.pk).rotate_token()
    assert post_alerts(alertmanager(alert(instance="b")), token=old).status_code == 404
    assert post_alerts(alertmanager(alert(instance="c")), token=new).status_code == 202
    assert post_alerts(alertmanager(alert(instance="d")), token=new).status_code == 202  # cached again


@pytest.mark.django_db
def test_a_deleted_integration_stops_answering_at_once(post_alerts, integration, published):
    assert post_alerts(alertmanager(alert(instance="a"))).status_code == 202
    Integration.objects.filter(pk=integration.pk).delete()
    assert post_alerts(alertmanager(alert(instance="b"))).status_code == 404


@pytest.mark.django_db
def test_an_edited_integration_is_read_again_at_once(post_alerts, integration, published):
    assert post_alerts(alertmanager(alert(instance="a"))).status_code == 202  # cached as an alertmanager one
    integration.kind = "grafana"
    integration.save()
    assert post_alerts(alertmanager(alert(instance="b"))).status_code == 404
    assert post_alerts(alertmanager(alert(instance="c")), kind="grafana").status_code == 202
