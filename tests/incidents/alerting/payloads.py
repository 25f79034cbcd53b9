"""Webhook bodies shaped exactly like Alertmanager's (version 4) and Grafana's (version 1)."""

import hashlib
import json

NOT_ENDED = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def alert(
    name: str = "APIHigh5xxRate",
    *,
    status: str = "firing",
    starts: str = "2025-12-16T10:00:00.000Z",
    ends: str = NOT_ENDED,
    severity: str = "critical",
    instance: str = "api-1:8000",
    service: str | None = "cosmetica-api",
    summary: str | None = "More than 1% of API requests return 5xx",
    **labels,
) -> dict:
    all_labels = {"alertname": name, "severity": severity, "instance": instance, "job": "cosmetica-api", **labels}
    if service:
        all_labels["service"] = service
    annotations = {
        "description": f"{name} on {instance}: error ratio above threshold for 5 minutes.",
        "runbook_url": "https://runbooks.example/cosmetica#apihigh5xxrate",
    }
    if summary:
        annotations["summary"] = summary
    return {
        "status": status,
        "labels": all_labels,
        "annotations": annotations,
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=sum%28rate%28http_requests_total%5B5m%5D%29%29",
        "fingerprint": fingerprint(all_labels),
    }


def resolved(firing: dict, ends: str = "2025-12-16T10:20:00.000Z") -> dict:
    return {**firing, "status": "resolved", "endsAt": ends}


def alertmanager(*alerts: dict, group: str = "APIHigh5xxRate", truncated: int = 0) -> dict:
    alerts = list(alerts) or [alert()]
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="' + group + '"}',
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "ops-portal",
        "groupLabels": {"alertname": group},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


def grafana(*alerts: dict, group: str = "StockConsumeFailures") -> dict:
    body = alertmanager(*alerts, group=group)
    body.update(version="1", orgId=1, title=f"[FIRING:1] {group}", state="alerting", message="")
    for item in body["alerts"]:
        item.update(
            silenceURL="https://grafana.example/alerting/silence/new?alertmanager=grafana",
            dashboardURL="https://grafana.example/d/sales-stock",
            panelURL="https://grafana.example/d/sales-stock?viewPanel=3",
            values={"B": 0.07, "C": 1},
        )
    return body
