"""What Alertmanager can legitimately send is never refused (thousands of alerts, group keys of any
length), and applying a delivery writes its alerts in bulk with one grouped timeline entry."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.alerting import intake, sources
from incidents.models import Alert, AlertDelivery, AlertGroup, Incident
from incidents.tasks import process_alert_delivery
from tests.incidents.alerting.payloads import alert, alertmanager, resolved

pytestmark = pytest.mark.django_db


def many(count: int, **kwargs) -> list[dict]:
    return [alert(instance=f"api-{n}:8000", **kwargs) for n in range(count)]


def alert_events(incident) -> list[str]:
    return list(incident.events.filter(kind="alert").order_by("id").values_list("body", flat=True))


def test_a_notification_of_5000_realistic_alerts_fits_the_body_cap_and_is_stored(post_alerts, monkeypatch):
    payload = alertmanager(*many(5000))
    for item in payload["alerts"]:  # kube-prometheus-like labels and annotations: ~1 KB per alert
        item["labels"].update(namespace="shop", pod=f"api-{item['labels']['instance']}", container="api")
        item["annotations"]["description"] += " See the dashboard for the pod's recent restarts and errors."
    body = json.dumps(payload).encode()
    assert len(body) > 3 * 1024 * 1024
    monkeypatch.setattr(process_alert_delivery, "apply_async", lambda *a, **k: None)  # stored is what counts here
    response = post_alerts(None, raw=body)
    assert response.status_code == 202, response.content
    assert response.json()["alerts"] == 5000 and AlertDelivery.objects.get().alert_count == 5000


def test_more_than_a_chunk_of_alerts_is_applied_in_chunks_with_one_grouped_entry_each(post_alerts):
    assert post_alerts(alertmanager(*many(1200))).status_code == 202
    incident = Incident.objects.get()
    assert incident.alerts.count() == 1200 and AlertDelivery.objects.get().state == "processed"
    events = alert_events(incident)
    assert [e.split("**")[1] for e in events] == ["500 alerts firing", "500 alerts firing", "200 alerts firing"]

    delivery = AlertDelivery.objects.get()  # applied again (a redelivered task after a crash): nothing changes
    AlertDelivery.objects.filter(pk=delivery.pk).update(state="pending")
    intake.apply_delivery(delivery.pk)
    assert Alert.objects.count() == 1200 and alert_events(incident) == events


def test_a_group_key_of_10000_characters_is_accepted_and_keeps_its_group(post_alerts):
    payload = alertmanager(alert(instance="a"))
    payload["groupKey"] = "{}:{" + ",".join(f'label{n}="{"v" * 20}"' for n in range(400)) + "}"
    payload["groupKey"] = payload["groupKey"][:10_000].ljust(10_000, "x")
    assert post_alerts(payload).status_code == 202
    payload["alerts"].append(alert(instance="b"))
    assert post_alerts(payload).status_code == 202
    group = AlertGroup.objects.get()
    assert len(group.group_key) == 10_000 and group.incident.alerts.count() == 2
    assert AlertDelivery.objects.filter(group_key=payload["groupKey"]).count() == 2


def test_many_alerts_changing_at_once_get_one_grouped_entry_and_stay_listed(post_alerts, client, viewer):
    assert post_alerts(alertmanager(*many(12))).status_code == 202
    incident = Incident.objects.get()
    [entry] = alert_events(incident)
    assert entry.startswith(
        "**12 alerts firing**: `APIHigh5xxRate instance=api-0:8000`, `APIHigh5xxRate instance=api-1:8000`, "
        "`APIHigh5xxRate instance=api-2:8000` … and 9 more"
    )
    client.force_login(viewer)
    page = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert page.count('class="badge alert-firing"') == 12

    assert post_alerts(alertmanager(*[resolved(a) for a in many(12)])).status_code == 202
    assert alert_events(incident)[-2].startswith("**12 alerts resolved**")


def test_a_few_alerts_keep_an_entry_each(post_alerts):
    post_alerts(alertmanager(*many(5)))
    events = alert_events(Incident.objects.get())
    assert len(events) == 5 and all(e.startswith("**Firing**") for e in events)


def applied_queries(integration, alerts: list[dict], group: str) -> int:
    raw = alertmanager(*alerts, group=group)
    delivery, _ = intake._keep(integration, raw, sources.get("alertmanager").normalise(raw))
    with CaptureQueriesContext(connection) as queries:
        intake.apply_delivery(delivery.pk)
    return len(queries)


@pytest.mark.parametrize("kind", ["new", "repeated", "resolved"])
def test_applying_a_delivery_costs_the_same_queries_for_10_and_50_alerts(integration, kind):
    # 50: SQLite takes at most 999 parameters per query, so it splits bulk writes of more rows.
    counts = []
    for count in (10, 50):
        alerts = [alert(instance=f"{count}-{n}") for n in range(count)]
        if kind != "new":
            applied_queries(integration, alerts, str(count))
        if kind == "resolved":
            alerts = [resolved(a) for a in alerts]
        elif kind == "repeated":
            alerts = [{**a, "annotations": {**a["annotations"], "summary": "changed"}} for a in alerts]
        counts.append(applied_queries(integration, alerts, str(count)))
    assert counts[0] == counts[1]
