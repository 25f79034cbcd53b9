"""Grafana alerting's webhook contact point: Alertmanager's shape with `"version": "1"`.

Grafana adds `orgId`, `title`, `state`, `message` and per alert `silenceURL`, `dashboardURL`,
`panelURL` and `values`; the links and values are kept as the alert's source fields.
"""

from rest_framework import serializers

from incidents.alerting.sources import alertmanager
from incidents.alerting.sources.base import AlertList, Batch, Source, any_map, link, optional, validated

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


SOURCE = Source(slug="grafana", label="Grafana alerting", normalise=normalise)
