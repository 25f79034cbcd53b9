"""Alert intake at its edges: counts that do not fit, chunked bodies, oversized system entries, and
the intake token kept out of every log line."""

import io
import json

import pytest
from django.conf import settings

from incidents.models import AlertDelivery, Incident
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


def test_a_truncated_count_too_large_to_store_is_a_400_not_a_503(post_alerts):
    payload = alertmanager(alert())
    payload["truncatedAlerts"] = 2**31
    response = post_alerts(payload)
    assert response.status_code == 400
    assert "truncatedAlerts" in response.json()["detail"]
    assert not AlertDelivery.objects.exists()
    payload["truncatedAlerts"] = 2**31 - 1  # the largest that fits is stored
    assert post_alerts(payload).status_code == 202


def chunked(post_alerts, body: bytes):
    """What gunicorn hands Django for `Transfer-Encoding: chunked`: no Content-Length, a de-chunked stream."""
    return post_alerts(
        None, raw=body, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body)}
    )


def test_a_chunked_body_without_content_length_is_read(post_alerts):
    response = chunked(post_alerts, json.dumps(alertmanager(alert())).encode())
    assert response.status_code == 202, response.content
    assert Incident.objects.count() == 1


def test_a_chunked_body_over_the_cap_is_a_413(post_alerts, settings):
    settings.ALERT_INTAKE_MAX_BODY_BYTES = 1024 * 1024
    payload = alertmanager(alert())
    payload["alerts"][0]["annotations"]["description"] = "x" * (1024 * 1024)
    response = chunked(post_alerts, json.dumps(payload).encode())
    assert response.status_code == 413
    assert not AlertDelivery.objects.exists()


def test_an_alert_timeline_entry_is_capped_like_a_persons(post_alerts):
    labels = {f"label_{n:03d}": "v" * 290 for n in range(200)}  # ~60 000 characters of labels
    assert post_alerts(alertmanager(alert(**labels))).status_code == 202
    entry = Incident.objects.get().events.get(kind="alert")
    assert len(entry.body) <= settings.TIMELINE_BODY_MAX_LENGTH
    assert entry.body.startswith("**Firing**") and "more characters left out)" in entry.body


def test_the_intake_token_never_reaches_a_log_line(post_alerts, integration_and_token, json_logs):
    _, token = integration_and_token
    assert post_alerts(alertmanager(alert())).status_code == 202
    assert post_alerts(None, raw=b"{").status_code == 400  # django.request logs a "Bad Request" warning
    assert post_alerts(alertmanager(alert()), token=token + "x").status_code == 404
    lines = json_logs.records
    paths = {r["path"] for r in lines if r["logger"] == "opsportal.request"}
    assert paths == {"/api/integrations/alertmanager/[redacted]/"}
    warnings = [r for r in lines if r["logger"] == "django.request"]
    assert warnings and all("/api/integrations/alertmanager/[redacted]/" in r["message"] for r in warnings)
    assert token not in json_logs.text
