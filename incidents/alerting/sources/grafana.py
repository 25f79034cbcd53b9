"""Grafana alerting's webhook contact point: Alertmanager's shape with `"version": "1"`.

Grafana adds `orgId`, `title`, `state`, `message` and per alert `silenceURL`, `dashboardURL`,
`panelURL` and `values`; the links and values are kept as the alert's source fields.
"""

from rest_framework import serializers

from incidents.alerting.sources import alertmanager
from incidents.alerting.sources.base import AlertList, Batch, Source, TestAlert, any_map, link, optional, validated
from incidents.choices import AlertStatus

# Grafana's per-alert link fields → the link roles the portal shows.
LINKS = {"dashboard": "dashboardURL", "panel": "panelURL", "silence": "silenceURL"}


ALERT_FIELDS = {
    **alertmanager.ALERT_FIELDS,
    **{key: link for key in LINKS.values()},
    "values": optional(any_map, dict, nullable=True),
}


class WebhookSerializer(alertmanager.WebhookSerializer):
    kind = "grafana"
    versions = ("1", "4")

    orgId = serializers.IntegerField(required=False)
    alerts = AlertList(ALERT_FIELDS)


def source_fields(alert: dict) -> dict:
    fields = {}
    links = {role: alert[key] for role, key in LINKS.items() if alert.get(key)}
    if links:
        fields["links"] = links
    if alert.get("values"):
        fields["values"] = alert["values"]
    return fields


def normalise(raw: dict) -> Batch:
    data = validated(WebhookSerializer(data=raw))
    alerts = [alertmanager.normalised_alert(alert, source_fields(alert)) for alert in data["alerts"]]
    return alertmanager.batch(data, alerts)


def test_payload(test: TestAlert) -> dict:
    """Grafana's contact point: Alertmanager's shape, version 1, with Grafana's own fields."""
    payload = alertmanager.test_payload(test)
    firing = test.status == AlertStatus.FIRING
    alert = payload["alerts"][0]
    alert |= {
        "silenceURL": "",  # Grafana sends "" for links it does not have
        "dashboardURL": "",
        "panelURL": "",
        "values": {"A": 1 if firing else 0},
        "valueString": f"[ var='A' labels={{}} value={1 if firing else 0} ]",
    }
    return payload | {
        "version": "1",
        "orgId": 1,
        "receiver": "opsportal",
        "state": "alerting" if firing else "ok",
        "title": f"[{test.status.upper()}:1] {test.labels['alertname']}",
        "message": test.annotations["summary"],
    }


SOURCE = Source(slug="grafana", label="Grafana alerting", normalise=normalise, test_payload=test_payload)
