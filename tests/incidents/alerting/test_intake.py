"""Alertmanager and Grafana webhooks: from the POST to incidents, alerts and timeline entries."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerDown

from incidents.alerting import first_look
from incidents.metrics import alerts_received_total
from incidents.models import Alert, AlertDelivery, Incident, Integration, TimelineEvent
from incidents.tasks import process_alert_delivery, requeue_alert_deliveries
from tests.factories import ServiceFactory
from tests.incidents.alerting.payloads import alert, alertmanager, grafana, resolved

pytestmark = pytest.mark.django_db


def alert_events(incident):
    return list(incident.events.filter(kind="alert").order_by("id").values_list("body", flat=True))


def test_single_firing_alert_opens_an_incident(post_alerts, service):
    response = post_alerts(alertmanager(alert()))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["alerts"] == 1

    incident = Incident.objects.get()
    assert incident.title == "More than 1% of API requests return 5xx"
    assert incident.severity == "SEV1"  # labels.severity=critical through the default mapping
    assert incident.status == "triggered" and incident.created_by is None
    assert [s.slug for s in incident.services.all()] == ["cosmetica-api"]
    assert incident.started_at.isoformat() == "2025-12-16T10:00:00+00:00"
    assert "error ratio above threshold" in incident.summary

    row = Alert.objects.get()
    assert (row.alertname, row.status, row.incident) == ("APIHigh5xxRate", "firing", incident)
    assert row.labels["instance"] == "api-1:8000" and row.ends_at is None
    assert row.generator_url.startswith("http://prometheus.example:9090/graph")
    [event] = alert_events(incident)
    assert event.startswith("**Firing**: `APIHigh5xxRate` · severity `critical`")
    assert "[Runbook](https://runbooks.example/cosmetica#apihigh5xxrate)" in event
    assert incident.sla.ack_due_at is not None  # the response clock started
    assert AlertDelivery.objects.get().state == "processed"


def test_alerts_of_one_group_share_one_incident_and_later_ones_attach(post_alerts):
    first = [alert(instance=f"api-{n}:8000") for n in (1, 2, 3)]
    assert post_alerts(alertmanager(*first)).status_code == 202
    incident = Incident.objects.get()
    assert incident.alerts.count() == 3 and len(alert_events(incident)) == 3

    later = alert(instance="api-4:8000", starts="2025-12-16T10:05:00Z")
    assert post_alerts(alertmanager(*first, later)).status_code == 202
    assert Incident.objects.count() == 1
    assert incident.alerts.count() == 4
    assert len(alert_events(incident)) == 4  # the three known alerts repeated add nothing
    assert "api-4:8000" in alert_events(incident)[-1]


def test_another_group_opens_another_incident(post_alerts):
    post_alerts(alertmanager(alert()))
    post_alerts(alertmanager(alert("StockConsumeFailures", summary=None), group="StockConsumeFailures"))
    assert sorted(Incident.objects.values_list("title", flat=True)) == [
        "More than 1% of API requests return 5xx",
        "StockConsumeFailures",  # no summary annotation: the alert name
    ]


def test_truncated_notification_is_noted_on_the_timeline(post_alerts):
    post_alerts(alertmanager(alert(instance="a"), alert(instance="b"), truncated=25))
    incident = Incident.objects.get()
    assert incident.alerts.count() == 2
    assert any("left 25 more alerts" in body for body in alert_events(incident))
    assert AlertDelivery.objects.get().truncated_alerts == 25


def test_resolving_every_alert_mitigates_the_incident(post_alerts, responder):
    a, b = alert(instance="a"), alert(instance="b")
    post_alerts(alertmanager(a, b))
    incident = Incident.objects.get()
    incident.transition_to("acknowledged", by=responder)

    post_alerts(alertmanager(resolved(a), b))
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    assert alert_events(incident)[-1].startswith("**Resolved**")

    post_alerts(alertmanager(resolved(a), resolved(b)))
    incident.refresh_from_db()
    assert incident.status == "mitigated" and incident.mitigated_at is not None
    assert "**All alerts resolved.**" in alert_events(incident)
    assert incident.events.filter(kind="status_change", body__contains="→ **mitigated**").count() == 1
    assert not Alert.objects.firing().exists()
    assert str(Alert.objects.get(labels__instance="b").ends_at.isoformat()) == "2025-12-16T10:20:00+00:00"


def test_all_resolved_does_not_move_an_incident_that_is_further(post_alerts, responder):
    a = alert()
    post_alerts(alertmanager(a))
    incident = Incident.objects.get()
    incident.transition_to("resolved", by=responder)
    post_alerts(alertmanager(resolved(a)))
    incident.refresh_from_db()
    assert incident.status == "resolved"  # a person resolved it; the late resolve is recorded only
    assert alert_events(incident)[-1].startswith("**Resolved**")


def test_firing_again_after_resolve_attaches_to_the_open_incident(post_alerts):
    a = alert()
    post_alerts(alertmanager(a))
    post_alerts(alertmanager(resolved(a)))
    incident = Incident.objects.get()
    assert incident.status == "mitigated"

    again = alert(starts="2025-12-16T11:00:00Z")
    assert again["fingerprint"] == a["fingerprint"]
    post_alerts(alertmanager(again))
    assert Incident.objects.count() == 1
    assert alert_events(incident)[-1].startswith("**Firing again**")
    row = Alert.objects.get()
    assert row.status == "firing" and row.ends_at is None and row.starts_at.hour == 11


def test_late_copy_of_an_old_firing_changes_nothing(post_alerts):
    a = alert()
    post_alerts(alertmanager(a))
    post_alerts(alertmanager(resolved(a)))
    events = TimelineEvent.objects.count()
    stale = {**alertmanager(a), "receiver": "ops-portal-ha"}  # same firing from the HA peer, late
    assert post_alerts(stale).status_code == 202
    assert TimelineEvent.objects.count() == events
    assert Alert.objects.get().status == "resolved"


def test_after_a_person_resolved_the_incident_a_new_firing_opens_a_new_one(post_alerts, responder):
    a = alert()
    post_alerts(alertmanager(a))
    first = Incident.objects.get()
    first.transition_to("resolved", by=responder, note="Rolled back")

    repeat = {**alertmanager(a), "receiver": "repeat"}  # Alertmanager's repeat of the same firing
    post_alerts(repeat)
    assert Incident.objects.count() == 1  # somebody handled that very firing

    post_alerts(alertmanager(alert(starts="2025-12-16T12:00:00Z")))
    second = Incident.objects.exclude(pk=first.pk).get()
    assert second.status == "triggered"
    assert first.alerts.count() == 1 and second.alerts.count() == 1


def test_redelivery_of_the_same_payload_changes_nothing(post_alerts):
    payload = alertmanager(alert(instance="a"), alert(instance="b"))
    first = post_alerts(payload)
    counts = (Incident.objects.count(), Alert.objects.count(), TimelineEvent.objects.count())
    second = post_alerts(payload)
    assert second.status_code == 202
    assert second.json() == {**first.json(), "status": "duplicate"}
    assert (Incident.objects.count(), Alert.objects.count(), TimelineEvent.objects.count()) == counts
    assert AlertDelivery.objects.count() == 1
    process_alert_delivery(first.json()["delivery"])  # the worker getting the message twice
    assert (Incident.objects.count(), Alert.objects.count(), TimelineEvent.objects.count()) == counts


def test_a_re_encoded_copy_of_a_payload_is_a_duplicate_and_the_stored_payload_is_the_same(post_alerts):
    """An HA pair of Alertmanagers, or a proxy, may send the same notification with another key
    order or spacing: it is the same payload, stored once."""
    import json

    payload = alertmanager(alert(instance="a"), alert(instance="b"))
    first = post_alerts(payload)
    reordered = json.dumps(dict(reversed(list(payload.items()))), indent=2).encode()
    second = post_alerts(None, raw=reordered)
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json() == {**first.json(), "status": "duplicate"}
    assert AlertDelivery.objects.get().payload == payload


def test_severity_mapping_and_service_from_job_or_default(client, db):
    postgres = ServiceFactory(name="Postgres", slug="postgres")
    fallback = ServiceFactory(name="Platform", slug="platform")
    _, token = Integration.create(
        name="custom", kind="alertmanager", default_service=fallback, severity_mapping={"warning": "SEV2"}
    )

    def post(payload):
        return client.post(f"/api/integrations/alertmanager/{token}/", payload, content_type="application/json")

    post(alertmanager(alert("PgReplicationLag", severity="warning", service=None, job="postgres"), group="a"))
    post(alertmanager(alert("DiskFull", severity="whatever", service="unknown-thing"), group="b"))
    lag, disk = Incident.objects.order_by("id")
    assert (lag.severity, [s.slug for s in lag.services.all()]) == ("SEV2", ["postgres"])
    assert (disk.severity, [s.slug for s in disk.services.all()]) == ("SEV3", ["platform"])
    assert postgres.pk


def test_grafana_payload_keeps_its_links_and_values(client, db):
    _, token = Integration.create(name="grafana", kind="grafana")
    payload = grafana(alert("StockConsumeFailures", summary="Stock consumption failing"))
    response = client.post(f"/api/integrations/grafana/{token}/", payload, content_type="application/json")
    assert response.status_code == 202, response.json()
    row = Alert.objects.get()
    links = row.source_fields["links"]
    assert links["dashboard"] == "https://grafana.example/d/sales-stock"
    assert links["panel"].endswith("viewPanel=3") and links["silence"].startswith("https://grafana.example/")
    assert row.source_fields["values"] == {"B": 0.07, "C": 1}
    event = alert_events(row.incident)[0]
    assert "[Dashboard](https://grafana.example/d/sales-stock)" in event and "`B=0.07`" in event


def test_links_that_are_not_http_are_dropped_not_rendered(post_alerts):
    bad = alert()
    bad["generatorURL"] = "javascript:alert(1)"
    bad["annotations"]["runbook_url"] = "javascript:alert(2)"
    assert post_alerts(alertmanager(bad)).status_code == 202
    row = Alert.objects.get()
    assert row.generator_url == "" and row.runbook_url == ""
    html = row.incident.events.get(kind="alert").body_html
    assert "javascript" not in html


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("groupKey"), "groupKey: This field is required."),
        (lambda p: p.update(version="3"), "version: alertmanager payload version '3' is not supported"),
        (lambda p: p.update(alerts=[]), "alerts:"),
        (lambda p: p.update(alerts="nope"), "alerts:"),
        (lambda p: p["alerts"][0].pop("startsAt"), "alerts[0].startsAt: This field is required."),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt: Datetime has wrong format"),
        (lambda p: p["alerts"][0].update(status="exploded"), 'alerts[0].status: "exploded" is not a valid choice.'),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint: This field is required."),
        (lambda p: p["alerts"][0]["labels"].update(team={"a": 1}), "alerts[0].labels.team: Not a valid string."),
    ],
)
def test_wrong_shape_is_a_400_naming_the_field(post_alerts, mutate, field):
    payload = alertmanager(alert())
    mutate(payload)
    response = post_alerts(payload)
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert not AlertDelivery.objects.exists() and not Incident.objects.exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "Body is not valid JSON"),
        (b"", "Body is not valid JSON"),
        (b"\xff\xfe garbage", "Body is not valid JSON"),
        (b"[1, 2]", "Body must be a JSON object"),
        (b"[" * 200_000, "nested too deeply"),
        (json.dumps(alertmanager(alert(instance="a\u0000b"))).encode(), "NUL characters"),
    ],
)
def test_malformed_json_is_a_400(post_alerts, raw, message):
    response = post_alerts(None, raw=raw)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_body_over_the_cap_is_a_413(post_alerts, settings):
    settings.ALERT_INTAKE_MAX_BODY_BYTES = 1024 * 1024
    payload = alertmanager(alert())
    payload["alerts"][0]["annotations"]["description"] = "x" * (1024 * 1024)
    response = post_alerts(payload)
    assert response.status_code == 413
    assert "max_alerts" in response.json()["detail"]
    assert not AlertDelivery.objects.exists()


def test_unknown_or_wrong_kind_token_is_a_404(post_alerts, integration_and_token, client):
    _, token = integration_and_token
    assert post_alerts(alertmanager(alert()), token="not-the-token").status_code == 404
    assert post_alerts(alertmanager(alert()), kind="grafana").status_code == 404
    assert post_alerts(alertmanager(alert()), kind="pagerduty").status_code == 404
    assert client.get(f"/api/integrations/alertmanager/{token}/").status_code == 405
    assert not AlertDelivery.objects.exists()


def test_rotating_the_token_retires_the_old_url(post_alerts, integration_and_token):
    integration, old = integration_and_token
    new = integration.rotate_token()
    assert post_alerts(alertmanager(alert()), token=old).status_code == 404
    assert post_alerts(alertmanager(alert()), token=new).status_code == 202
    integration.refresh_from_db()
    assert old not in integration.token_hash and integration.token_hint == new[:6]


def test_token_is_stored_hashed(integration_and_token):
    integration, token = integration_and_token
    stored = json.dumps(list(Integration.objects.values().get(pk=integration.pk).values()), default=str)
    assert token not in stored
    assert integration.url(token, base_url="https://ops.example.com/") == (
        f"https://ops.example.com/api/integrations/alertmanager/{token}/"
    )


def test_queue_down_is_a_503_and_the_retry_delivers(post_alerts, monkeypatch):
    payload = alertmanager(alert())

    def broker_down(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patched:
        patched.setattr(process_alert_delivery, "apply_async", broker_down)
        response = post_alerts(payload)
    assert response.status_code == 503 and response["Retry-After"]
    assert AlertDelivery.objects.get().state == "pending"  # stored: nothing is lost
    assert not Incident.objects.exists()

    retry = post_alerts(payload)  # Alertmanager retries after a 5xx
    assert retry.status_code == 202 and retry.json()["status"] == "duplicate"
    assert Incident.objects.count() == 1 and AlertDelivery.objects.get().state == "processed"


def test_first_look_starts_once_when_an_alert_opens_an_incident(
    post_alerts, monkeypatch, django_capture_on_commit_callbacks
):
    started = []
    monkeypatch.setattr(first_look, "start_first_look", lambda incident, name, integration: started.append(name))
    with django_capture_on_commit_callbacks(execute=True):
        post_alerts(alertmanager(alert(instance="a")))
        post_alerts(alertmanager(alert(instance="a"), alert(instance="b")))
    assert started == ["APIHigh5xxRate"]


def test_first_look_is_off_when_the_integration_says_so(
    post_alerts, integration, monkeypatch, django_capture_on_commit_callbacks
):
    integration.run_first_look = False
    integration.save()
    started = []
    monkeypatch.setattr(first_look, "start_first_look", lambda *args: started.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        post_alerts(alertmanager(alert()))
    assert Incident.objects.count() == 1 and started == []


def test_received_alerts_are_counted(post_alerts):
    def count(status):
        return alerts_received_total.labels(integration_kind="alertmanager", status=status)._value.get()

    before = count("firing"), count("resolved")
    a, b = alert(instance="a"), alert(instance="b")
    post_alerts(alertmanager(a, resolved(b)))
    post_alerts(alertmanager(a, resolved(b)))  # a duplicate is not counted again
    assert (count("firing") - before[0], count("resolved") - before[1]) == (1, 1)


def test_lost_queue_messages_are_requeued_by_the_sweep(post_alerts, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(process_alert_delivery, "apply_async", lambda *a, **k: None)  # the message is lost
        assert post_alerts(alertmanager(alert())).status_code == 202
    assert requeue_alert_deliveries() == 0  # not overdue yet
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert requeue_alert_deliveries() == 1
    assert AlertDelivery.objects.get().state == "processed" and Incident.objects.count() == 1


def test_old_applied_payloads_are_pruned_by_the_retention_sweep(post_alerts, settings):
    from ops import retention

    post_alerts(alertmanager(alert()))
    with time_machine.travel(timezone.now() + timedelta(days=settings.ALERT_DELIVERY_RETENTION_DAYS + 1)):
        assert retention.run().counts["alert_payloads"] == 1
    assert not AlertDelivery.objects.exists() and Alert.objects.count() == 1  # the alert and incident stay


def test_database_down_is_a_503(post_alerts):
    from django.db import OperationalError, connection

    def down(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "incidents_alertdelivery"'):
            raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(down):
        response = post_alerts(alertmanager(alert()))
    assert response.status_code == 503 and "could not be stored" in response.json()["detail"]
