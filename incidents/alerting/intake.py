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

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from incidents import metrics
from incidents.alerting import first_look, sources
from incidents.alerting.sources import Batch, NormalisedAlert
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


def payload_hash(raw: dict) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def store(integration: Integration, raw: dict, batch: Batch) -> tuple[AlertDelivery, bool]:
    """Keep the payload (once, however often it is sent) and queue it. Returns (delivery, created)."""
    delivery, created = _keep(integration, raw, batch)
    if created:
        for alert in batch.alerts:
            metrics.alerts_received_total.labels(integration_kind=integration.kind, status=alert.status).inc()
    if created or delivery.state == DeliveryState.PENDING:
        # A redelivery of a payload that is still pending is queued again: the first queueing
        # may be the one that failed. Applying is idempotent, so a second message is harmless.
        _queue(delivery)
    return delivery, created


def _keep(integration: Integration, raw: dict, batch: Batch) -> tuple[AlertDelivery, bool]:
    digest = payload_hash(raw)
    now = timezone.now()
    try:
        with transaction.atomic():  # a savepoint when called inside a transaction: a duplicate must not abort it
            delivery = AlertDelivery.objects.create(
                integration=integration,
                payload=raw,
                payload_hash=digest,
                group_key=batch.group_key,
                alert_count=len(batch.alerts),
                truncated_alerts=batch.truncated_alerts,
                received_at=now,
                enqueued_at=now,
            )
    except IntegrityError:
        return AlertDelivery.objects.get(integration=integration, payload_hash=digest), False
    return delivery, True


def _queue(delivery: AlertDelivery) -> None:
    from incidents.tasks import process_alert_delivery

    try:
        process_alert_delivery.apply_async((delivery.pk,), retry=False)
    except Exception as exc:
        logger.warning("alert delivery %s stored but not queued: %s", delivery.pk, exc)
        raise QueueUnavailable(str(exc)) from exc


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
    batch = sources.get(integration.kind).normalise(delivery.payload)
    group = _group(integration, batch)
    outcome = _Outcome()
    with transaction.atomic():
        locked = AlertDelivery.objects.select_for_update().get(pk=delivery.pk)
        if locked.state == DeliveryState.PROCESSED:
            return locked.result
        group = AlertGroup.objects.select_for_update().get(pk=group.pk)
        _apply(group, integration, batch, outcome)
        group.group_labels = batch.group_labels
        group.external_url = batch.external_url
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
    try:
        first_look.start_first_look(incident, alertname, integration)
    except Exception:  # the incident is committed; a failing first look must not fail the intake
        logger.exception("first look for %s failed", incident.reference)


def _group(integration: Integration, batch: Batch) -> AlertGroup:
    key = batch.group_key
    group, _ = AlertGroup.objects.get_or_create(
        integration=integration, key_hash=hash_group_key(key), defaults={"group_key": key}
    )
    return group


@dataclass
class _Known:
    """The rows a delivery's fingerprints already have: in the group's open incident (`current`)
    and in its earlier incidents (`earlier`, the latest one per fingerprint)."""

    current: dict[str, Alert]
    earlier: dict[str, Alert]

    @classmethod
    def load(cls, group: AlertGroup, incident: Incident | None, fingerprints: list[str]) -> "_Known":
        current = {a.fingerprint: a for a in Alert.objects.filter(incident=incident, fingerprint__in=fingerprints)}
        earlier = {}
        for row in (
            Alert.objects.filter(group=group, fingerprint__in=fingerprints)
            .exclude(incident=incident)
            .select_related("incident")
            .order_by("id")
        ):
            earlier[row.fingerprint] = row  # the latest earlier incident wins
        return cls(current, earlier)

    def handled_before(self, alert: NormalisedAlert) -> bool:
        row = self.earlier.get(alert.fingerprint)
        return row is not None and alert.starts_at <= row.starts_at


def _apply(group: AlertGroup, integration: Integration, batch: Batch, outcome: _Outcome) -> None:
    now = timezone.now()
    incident = group.incident if group.incident_id and group.incident.is_open else None
    known = _Known.load(group, incident, [a.fingerprint for a in batch.alerts])
    if incident is None:
        incident = _open_for(group, integration, batch, known, outcome, now)
    for alert in batch.alerts:
        outcome.results[alert.fingerprint] = _apply_alert(incident, group, integration, alert, known, outcome, now)
    _note_truncation(incident, group, batch, now)
    if incident is not None and outcome.resolved_in_current:
        _mitigate_when_all_resolved(incident, now)


def _open_for(group, integration, batch: Batch, known: _Known, outcome: _Outcome, now) -> Incident | None:
    """The group's new incident, opened by its first firing alert that nobody handled before."""
    opener = next(
        (a for a in batch.alerts if a.status == AlertStatus.FIRING and not known.handled_before(a)),
        None,
    )
    if opener is None:
        return None
    incident = _open_incident(integration, opener, now)
    group.incident = incident
    outcome.opened = incident
    outcome.first_alertname = opener.labels.get("alertname", "")
    return incident


def _apply_alert(incident, group, integration, alert: NormalisedAlert, known: _Known, outcome, now) -> str:
    row = known.current.get(alert.fingerprint)
    if alert.status == AlertStatus.FIRING:
        return _firing(incident, group, integration, alert, row, known.handled_before(alert), now)
    result = _resolved(incident, group, integration, alert, row, known.earlier.get(alert.fingerprint), now)
    if result == "resolved" and incident is not None:
        outcome.resolved_in_current = True
    return result


def _note_truncation(incident: Incident | None, group: AlertGroup, batch: Batch, now: datetime) -> None:
    truncated = batch.truncated_alerts
    if incident is not None and truncated and truncated != group.truncated_alerts:
        TimelineEvent.record(
            incident,
            kind=EventKind.ALERT,
            body=(
                f"Alertmanager left {truncated} more alerts of this group out of the notification "
                f"(its max_alerts limit); see {_link('Alertmanager', batch.external_url)}."
            ),
            occurred_at=now,
        )
    group.truncated_alerts = truncated


def _mitigate_when_all_resolved(incident: Incident, now: datetime) -> None:
    if incident.alerts.firing().exists():
        return
    TimelineEvent.record(incident, kind=EventKind.ALERT, body="**All alerts resolved.**", occurred_at=now)
    incident.refresh_from_db(fields=["status"])
    if incident.status in MITIGATE_FROM:
        incident.transition_to(Status.MITIGATED, by=None, note="All alerts resolved; a person resolves the incident.")


def _firing(incident, group, integration, alert: NormalisedAlert, row, handled_before, now) -> str:
    if row is not None:
        if row.status == AlertStatus.FIRING:
            _copy(row, alert, now)
            if alert.starts_at > row.starts_at:
                row.starts_at = alert.starts_at
            row.save()
            return "unchanged"
        if alert.starts_at <= row.starts_at:
            return "stale"  # a late copy of the firing that was already resolved
        _copy(row, alert, now)
        row.status = AlertStatus.FIRING
        row.starts_at = alert.starts_at
        row.ends_at = None
        row.save()
        _event(incident, row, "Firing again", alert.starts_at)
        return "firing again"
    if handled_before or incident is None:
        return "already handled"
    row = Alert(integration=integration, group=group, incident=incident, fingerprint=alert.fingerprint)
    _copy(row, alert, now)
    row.status = AlertStatus.FIRING
    row.starts_at = alert.starts_at
    row.save()
    _event(incident, row, "Firing", alert.starts_at)
    return "firing"


def _resolved(incident, group, integration, alert: NormalisedAlert, row, earlier_row, now) -> str:
    ends_at = alert.ends_at or now
    target = row
    if target is None and earlier_row is not None and earlier_row.status == AlertStatus.FIRING:
        target = earlier_row  # the incident was resolved by a person before the alert resolved
    if target is not None:
        if target.status == AlertStatus.RESOLVED or alert.starts_at < target.starts_at:
            return "unchanged"
        _copy(target, alert, now)
        target.status = AlertStatus.RESOLVED
        target.ends_at = ends_at
        target.save()
        _event(target.incident, target, "Resolved", ends_at)
        return "resolved" if target is row else "resolved (earlier incident)"
    if incident is None:
        return "ignored: no incident"
    row = Alert(integration=integration, group=group, incident=incident, fingerprint=alert.fingerprint)
    _copy(row, alert, now)
    row.status = AlertStatus.RESOLVED
    row.starts_at = alert.starts_at
    row.ends_at = ends_at
    row.save()
    _event(incident, row, "Fired and resolved", ends_at)
    return "resolved"


def _copy(row: Alert, alert: NormalisedAlert, now: datetime) -> None:
    row.alertname = alert.labels.get("alertname", "")[:200]
    row.labels = alert.labels
    row.annotations = alert.annotations
    row.generator_url = alert.source_url
    row.source_fields = alert.source_fields
    row.last_received_at = now


def _open_incident(integration: Integration, alert: NormalisedAlert, now: datetime) -> Incident:
    labels, annotations = alert.labels, alert.annotations
    title = (annotations.get("summary") or labels.get("alertname") or alert.fingerprint).strip()
    service = _service(labels) or integration.default_service
    summary = annotations.get("description", "").strip()
    return Incident.declare(
        by=None,
        title=title[:200],
        summary=summary[: settings.TIMELINE_BODY_MAX_LENGTH],
        severity=integration.severity_for(labels.get("severity")),
        services=[service] if service else [],
        started_at=alert.starts_at,
        detected_at=now,
        is_test=sources.is_test_alert(labels),
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
    links = [_link(role.capitalize(), url) for role, url in row.links.items()]
    if links:
        lines.append(" · ".join(links))
    return "\n\n".join(lines)
