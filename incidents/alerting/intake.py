"""Alert intake: store a webhook payload durably, then apply it to incidents in the worker.

Rules applied to each alert of a delivery, under the lock of its AlertGroup row:

- The group's current incident is its open incident. The first firing alert that is new
  opens one (severity from labels.severity through the integration's mapping, service from a
  `service`/`job` label or the integration's default, title from annotations.summary or
  alertname). Every later alert of the group attaches to it as a timeline event.
- An alert is kept once per incident by fingerprint. Redelivered or repeated notifications
  change nothing; a firing alert with a later startsAt than its resolved row is "firing again";
  a firing alert with the startsAt of its resolved row is a late duplicate and is ignored.
- A firing alert that belongs to an incident a person already resolved (same fingerprint and
  startsAt) does not open a new incident: somebody handled it. When it fires again with a new
  startsAt, it does.
- A resolved alert adds a timeline event. When no alert of an open incident fires any more,
  the incident gets an "all alerts resolved" event and moves to mitigated unless it is already
  further; a person resolves it.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from incidents import metrics
from incidents.alerting.payload import payload_hash, validate
from incidents.choices import AlertStatus, DeliveryState, EventKind, Status
from incidents.models import (
    Alert,
    AlertDelivery,
    AlertGroup,
    Incident,
    Integration,
    Service,
    TimelineEvent,
)
from incidents.models.alerts import hash_group_key

logger = logging.getLogger(__name__)

MITIGATE_FROM = {Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING}


class QueueUnavailable(Exception):
    """The payload is stored but could not be queued; the sender should retry (HTTP 503)."""


def store(integration: Integration, raw: dict, data: dict) -> tuple[AlertDelivery, bool]:
    """Keep the payload (once, however often it is sent) and queue it. Returns (delivery, created)."""
    from incidents.tasks import process_alert_delivery

    digest = payload_hash(raw)
    now = timezone.now()
    try:
        with transaction.atomic():  # a savepoint when called inside a transaction: a duplicate must not abort it
            delivery = AlertDelivery.objects.create(
                integration=integration,
                payload=raw,
                payload_hash=digest,
                group_key=data["groupKey"],
                alert_count=len(data["alerts"]),
                truncated_alerts=data.get("truncatedAlerts") or 0,
                received_at=now,
                enqueued_at=now,
            )
        created = True
    except IntegrityError:
        delivery = AlertDelivery.objects.get(integration=integration, payload_hash=digest)
        created = False
    if created:
        for alert in data["alerts"]:
            metrics.alerts_received_total.labels(integration_kind=integration.kind, status=alert["status"]).inc()
    if created or delivery.state == DeliveryState.PENDING:
        # A redelivery of a payload that is still pending is queued again: the first queueing
        # may be the one that failed. Applying is idempotent, so a second message is harmless.
        try:
            process_alert_delivery.apply_async((delivery.pk,), retry=False)
        except Exception as exc:
            logger.warning("alert delivery %s stored but not queued: %s", delivery.pk, exc)
            raise QueueUnavailable(str(exc)) from exc
    return delivery, created


@dataclass
class _Outcome:
    opened: Incident | None = None
    first_alertname: str = ""
    results: dict = field(default_factory=dict)
    resolved_in_current: bool = False


def apply_delivery(delivery_id: int) -> dict:
    """Apply one stored delivery. Idempotent: an applied delivery is left alone."""
    delivery = AlertDelivery.objects.select_related("integration").filter(pk=delivery_id).first()
    if delivery is None or delivery.state == DeliveryState.PROCESSED:
        return {}
    integration = delivery.integration
    data = validate(delivery.payload, integration.kind)
    group = _group(integration, data)
    outcome = _Outcome()
    with transaction.atomic():
        locked = AlertDelivery.objects.select_for_update().get(pk=delivery.pk)
        if locked.state == DeliveryState.PROCESSED:
            return locked.result
        group = AlertGroup.objects.select_for_update().get(pk=group.pk)
        _apply(group, integration, data, outcome)
        group.group_labels = data.get("groupLabels") or {}
        group.external_url = data.get("externalURL") or ""
        group.save(update_fields=["incident", "group_labels", "external_url", "truncated_alerts", "updated_at"])
        locked.state = DeliveryState.PROCESSED
        locked.processed_at = timezone.now()
        locked.result = outcome.results
        locked.save(update_fields=["state", "processed_at", "result"])
        if outcome.opened is not None and integration.run_first_look:
            opened, alertname = outcome.opened, outcome.first_alertname
            transaction.on_commit(lambda: _first_look(opened, alertname, integration))
    return outcome.results


def _first_look(incident: Incident, alertname: str, integration: Integration) -> None:
    from incidents.alerting.first_look import start_first_look

    try:
        start_first_look(incident, alertname, integration)
    except Exception:  # the incident is committed; a failing first look must not fail the intake
        logger.exception("first look for %s failed", incident.reference)


def _group(integration: Integration, data: dict) -> AlertGroup:
    key = data["groupKey"]
    group, _ = AlertGroup.objects.get_or_create(
        integration=integration, key_hash=hash_group_key(key), defaults={"group_key": key}
    )
    return group


def _apply(group: AlertGroup, integration: Integration, data: dict, outcome: _Outcome) -> None:
    now = timezone.now()
    incident = group.incident if group.incident_id and group.incident.is_open else None
    alerts = data["alerts"]
    fingerprints = [a["fingerprint"] for a in alerts]
    current = {a.fingerprint: a for a in Alert.objects.filter(incident=incident, fingerprint__in=fingerprints)}
    earlier = {}
    for row in (
        Alert.objects.filter(group=group, fingerprint__in=fingerprints)
        .exclude(incident=incident)
        .select_related("incident")
        .order_by("id")
    ):
        earlier[row.fingerprint] = row  # the latest earlier incident wins

    def handled_before(alert: dict) -> bool:
        row = earlier.get(alert["fingerprint"])
        return row is not None and alert["startsAt"] <= row.starts_at

    if incident is None:
        opener = next(
            (a for a in alerts if a["status"] == AlertStatus.FIRING and not handled_before(a)),
            None,
        )
        if opener is not None:
            incident = _open_incident(integration, opener, now)
            group.incident = incident
            outcome.opened = incident
            outcome.first_alertname = opener["labels"].get("alertname", "")

    for alert in alerts:
        fingerprint = alert["fingerprint"]
        row = current.get(fingerprint)
        if alert["status"] == AlertStatus.FIRING:
            result = _firing(incident, group, integration, alert, row, handled_before(alert), now)
        else:
            result = _resolved(incident, group, integration, alert, row, earlier.get(fingerprint), now)
            if result == "resolved" and incident is not None:
                outcome.resolved_in_current = True
        outcome.results[fingerprint] = result

    truncated = data.get("truncatedAlerts") or 0
    if incident is not None and truncated and truncated != group.truncated_alerts:
        TimelineEvent.record(
            incident,
            kind=EventKind.ALERT,
            body=(
                f"Alertmanager left {truncated} more alerts of this group out of the notification "
                f"(its max_alerts limit); see {_link('Alertmanager', data.get('externalURL'))}."
            ),
            occurred_at=now,
        )
    group.truncated_alerts = truncated

    if incident is not None and outcome.resolved_in_current and not incident.alerts.firing().exists():
        TimelineEvent.record(incident, kind=EventKind.ALERT, body="**All alerts resolved.**", occurred_at=now)
        incident.refresh_from_db(fields=["status"])
        if incident.status in MITIGATE_FROM:
            incident.transition_to(
                Status.MITIGATED, by=None, note="All alerts resolved; a person resolves the incident."
            )


def _firing(incident, group, integration, alert, row, handled_before, now) -> str:
    if row is not None:
        if row.status == AlertStatus.FIRING:
            _copy(row, alert, now)
            if alert["startsAt"] > row.starts_at:
                row.starts_at = alert["startsAt"]
            row.save()
            return "unchanged"
        if alert["startsAt"] <= row.starts_at:
            return "stale"  # a late copy of the firing that was already resolved
        _copy(row, alert, now)
        row.status = AlertStatus.FIRING
        row.starts_at = alert["startsAt"]
        row.ends_at = None
        row.save()
        _event(incident, row, "Firing again", alert["startsAt"])
        return "firing again"
    if handled_before or incident is None:
        return "already handled"
    row = Alert(integration=integration, group=group, incident=incident, fingerprint=alert["fingerprint"])
    _copy(row, alert, now)
    row.status = AlertStatus.FIRING
    row.starts_at = alert["startsAt"]
    row.save()
    _event(incident, row, "Firing", alert["startsAt"])
    return "firing"


def _resolved(incident, group, integration, alert, row, earlier_row, now) -> str:
    ends_at = alert.get("endsAt") or now
    target = row
    if target is None and earlier_row is not None and earlier_row.status == AlertStatus.FIRING:
        target = earlier_row  # the incident was resolved by a person before the alert resolved
    if target is not None:
        if target.status == AlertStatus.RESOLVED or alert["startsAt"] < target.starts_at:
            return "unchanged"
        _copy(target, alert, now)
        target.status = AlertStatus.RESOLVED
        target.ends_at = ends_at
        target.save()
        _event(target.incident, target, "Resolved", ends_at)
        return "resolved" if target is row else "resolved (earlier incident)"
    if incident is None:
        return "ignored: no incident"
    row = Alert(integration=integration, group=group, incident=incident, fingerprint=alert["fingerprint"])
    _copy(row, alert, now)
    row.status = AlertStatus.RESOLVED
    row.starts_at = alert["startsAt"]
    row.ends_at = ends_at
    row.save()
    _event(incident, row, "Fired and resolved", ends_at)
    return "resolved"


def _copy(row: Alert, alert: dict, now: datetime) -> None:
    labels = alert["labels"]
    row.alertname = labels.get("alertname", "")[:200]
    row.labels = labels
    row.annotations = alert.get("annotations") or {}
    row.generator_url = alert.get("generatorURL") or ""
    row.silence_url = alert.get("silenceURL") or ""
    row.dashboard_url = alert.get("dashboardURL") or ""
    row.panel_url = alert.get("panelURL") or ""
    row.values = alert.get("values") or {}
    row.last_received_at = now


def _open_incident(integration: Integration, alert: dict, now: datetime) -> Incident:
    labels, annotations = alert["labels"], alert.get("annotations") or {}
    title = (annotations.get("summary") or labels.get("alertname") or alert["fingerprint"]).strip()
    service = _service(labels) or integration.default_service
    summary = annotations.get("description", "").strip()
    return Incident.declare(
        by=None,
        title=title[:200],
        summary=summary[: settings.TIMELINE_BODY_MAX_LENGTH],
        severity=integration.severity_for(labels.get("severity")),
        services=[service] if service else [],
        started_at=alert["startsAt"],
        detected_at=now,
    )


def _service(labels: dict) -> Service | None:
    for name in ("service", "job"):
        value = labels.get(name, "").strip()
        if not value:
            continue
        found = (
            Service.objects.filter(slug=slugify(value)).first() or Service.objects.filter(name__iexact=value).first()
        )
        if found:
            return found
    return None


def _event(incident: Incident, row: Alert, what: str, at: datetime) -> None:
    TimelineEvent.record(incident, kind=EventKind.ALERT, body=describe(row, what), occurred_at=at)


def _code(value: str) -> str:
    return "`" + str(value).replace("`", "'").replace("\n", " ")[:300] + "`"


def _link(label: str, url: str | None) -> str:
    return f"[{label}]({url})" if url and url.lower().startswith(("http://", "https://")) else label


def describe(row: Alert, what: str) -> str:
    """The markdown of an alert's timeline entry: what a responder needs at a glance."""
    head = f"**{what}**: {_code(row.alertname or row.fingerprint)}"
    if row.severity_label:
        head += f" · severity {_code(row.severity_label)}"
    lines = [head]
    summary = row.annotations.get("summary", "").strip()
    if summary:
        lines.append(f"> {summary[:500]}")
    description = row.annotations.get("description", "").strip()
    if description and what != "Resolved":
        lines.append(description[:2000])
    skip = {"alertname", "severity"}
    labels = ", ".join(_code(f"{k}={v}") for k, v in sorted(row.labels.items()) if k not in skip)
    if labels:
        lines.append(f"Labels: {labels}")
    if row.values:
        lines.append("Values: " + ", ".join(_code(f"{k}={v}") for k, v in sorted(row.values.items())))
    links = [
        _link(label, url)
        for label, url in (
            ("Source", row.generator_url),
            ("Dashboard", row.dashboard_url),
            ("Panel", row.panel_url),
            ("Runbook", row.runbook_url),
            ("Silence", row.silence_url),
        )
        if url
    ]
    if links:
        lines.append(" · ".join(links))
    return "\n\n".join(lines)
