"""Prometheus Alertmanager's webhook, payload version 4.

Unknown fields are ignored, so newer senders keep working. Grafana's contact point sends the
same shape with more fields; incidents/alerting/sources/grafana.py builds on these serializers.
"""

from datetime import datetime
from functools import partial

from rest_framework import serializers

from incidents.alerting.sources.base import (
    MAX_TRUNCATED,
    TEST_ALERTNAME,
    AlertList,
    Batch,
    Labels,
    Link,
    NormalisedAlert,
    Source,
    TestAlert,
    choice,
    link,
    optional,
    required,
    string_map,
    text,
    timestamp,
    validated,
)
from incidents.choices import AlertStatus


def _ends_at(value: str) -> datetime | None:
    # Alertmanager and Grafana send 0001-01-01T00:00:00Z for "not ended".
    parsed = timestamp(value)
    return None if parsed.year < 1971 else parsed


ALERT_FIELDS = {
    "status": required(choice(*AlertStatus.values)),
    "labels": required(string_map),
    "annotations": optional(string_map, dict),
    "startsAt": required(timestamp),
    "endsAt": optional(_ends_at, nullable=True),
    "generatorURL": link,
    "fingerprint": required(partial(text, max_length=128)),
}


class WebhookSerializer(serializers.Serializer):
    kind = "alertmanager"
    versions = ("4",)

    version = serializers.CharField(max_length=10)
    groupKey = serializers.CharField(max_length=None)
    # Stored in a PositiveIntegerField: a larger count would fail at the database (a 503 that
    # Alertmanager retries forever), so it is a 400 naming the field instead.
    truncatedAlerts = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TRUNCATED, default=0)
    status = serializers.ChoiceField(choices=AlertStatus.choices)
    receiver = serializers.CharField(required=False, allow_blank=True, max_length=500)
    groupLabels = Labels(required=False, default=dict)
    commonLabels = Labels(required=False, default=dict)
    commonAnnotations = Labels(required=False, default=dict)
    externalURL = Link()
    alerts = AlertList(ALERT_FIELDS)

    def validate_version(self, value: str) -> str:
        if value not in self.versions:
            raise serializers.ValidationError(
                f"{self.kind} payload version {value!r} is not supported; expected {' or '.join(self.versions)}."
            )
        return value


def normalised_alert(alert: dict, source_fields: dict | None = None) -> NormalisedAlert:
    return NormalisedAlert(
        fingerprint=alert["fingerprint"],
        status=alert["status"],
        starts_at=alert["startsAt"],
        ends_at=alert.get("endsAt"),
        labels=alert["labels"],
        annotations=alert.get("annotations") or {},
        source_url=alert.get("generatorURL") or "",
        source_fields=source_fields or {},
    )


def batch(data: dict, alerts: list[NormalisedAlert]) -> Batch:
    return Batch(
        group_key=data["groupKey"],
        alerts=alerts,
        group_labels=data.get("groupLabels") or {},
        external_url=data.get("externalURL") or "",
        truncated_alerts=data.get("truncatedAlerts") or 0,
    )


def normalise(raw: dict) -> Batch:
    data = validated(WebhookSerializer(data=raw))
    return batch(data, [normalised_alert(alert) for alert in data["alerts"]])


def _time(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else "0001-01-01T00:00:00Z"


def test_alert(test: TestAlert) -> dict:
    """One alert of a test payload, as Alertmanager writes it."""
    return {
        "status": test.status,
        "labels": test.labels,
        "annotations": test.annotations,
        "startsAt": _time(test.starts_at),
        "endsAt": _time(test.ends_at),
        "generatorURL": test.portal_url,
        "fingerprint": test.test_id[:16],
    }


def test_payload(test: TestAlert) -> dict:
    group_labels = {"alertname": TEST_ALERTNAME, "test_id": test.test_id}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{TEST_ALERTNAME}", test_id="{test.test_id}"}}',
        "truncatedAlerts": 0,
        "status": test.status,
        "receiver": "opsportal",
        "groupLabels": group_labels,
        "commonLabels": test.labels,
        "commonAnnotations": test.annotations,
        "externalURL": test.portal_url,
        "alerts": [test_alert(test)],
    }


SOURCE = Source(slug="alertmanager", label="Prometheus Alertmanager", normalise=normalise, test_payload=test_payload)
