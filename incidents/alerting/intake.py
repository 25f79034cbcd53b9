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
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from incidents import metrics
from incidents.alerting import alert_events, first_look, sources
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
from opsportal import broker

logger = logging.getLogger(__name__)

MITIGATE_FROM = {Status.TRIGGERED, Status.ACKNOWLEDGED, Status.INVESTIGATING}
CHUNK_SIZE = 500  # alerts applied per transaction: a notification of thousands holds no lock for long
ROW_FIELDS = [
    "alertname",
    "labels",
    "annotations",
    "generator_url",
    "source_fields",
    "last_received_at",
    "status",
    "starts_at",
    "ends_at",
]


class QueueUnavailable(Exception):
    """The payload is stored but could not be queued; the sender should retry (HTTP 503)."""


def canonical_json(raw: dict) -> str:
    """The payload as stored and hashed: sorted keys, no spaces, so a re-encoded copy of the same
    payload (another key order or spacing) is recognised as a duplicate."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_hash(raw: dict, canonical: str | None = None) -> str:
    return hashlib.sha256((canonical or canonical_json(raw)).encode()).hexdigest()


def store(integration: Integration, raw: dict, batch: Batch) -> tuple[AlertDelivery, bool]:
    """Keep the payload (once, however often it is sent) and queue it. Returns (delivery, created)."""
    delivery, created = _keep(integration, raw, batch)
    if created:
        for status, count in Counter(alert.status for alert in batch.alerts).items():
            metrics.alerts_received_total.labels(integration_kind=integration.kind, status=status).inc(count)
    if created or delivery.state == DeliveryState.PENDING:
        # A redelivery of a payload that is still pending is queued again: the first queueing
        # may be the one that failed. Applying is idempotent, so a second message is harmless.
        _queue(delivery)
    return delivery, created


def _keep(integration: Integration, raw: dict, batch: Batch) -> tuple[AlertDelivery, bool]:
    canonical = canonical_json(raw)
    now = timezone.now()
    return AlertDelivery.keep(
        payload=raw,
        payload_json=canonical,
        integration=integration,
        payload_hash=payload_hash(raw, canonical),
        group_key=batch.group_key,
        alert_count=len(batch.alerts),
        truncated_alerts=batch.truncated_alerts,
        received_at=now,
        enqueued_at=now,
    )


def _queue(delivery: AlertDelivery) -> None:
    from incidents.tasks import process_alert_delivery

    try:
        broker.publish(process_alert_delivery, (delivery.pk,))
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
    """Apply one stored delivery, a chunk per transaction. Each chunk stores on the delivery row how
    far the delivery got and what it changed, so a retry after a crash goes on where the last
    committed chunk stopped and ends the incident as an uninterrupted apply would. An applied
    delivery is left alone."""
    delivery = AlertDelivery.objects.select_related("integration").filter(pk=delivery_id).first()
    if delivery is None or delivery.state == DeliveryState.PROCESSED:
        return {}
    integration = delivery.integration
    batch = sources.get(integration.kind).normalise(delivery.payload)
    group = _group(integration, batch)
    while True:
        results = _apply_chunk(delivery.pk, group.pk, integration, batch)
        if results is not None:
            return results


def _apply_chunk(delivery_pk, group_pk, integration, batch: Batch) -> dict | None:
    """The delivery's next chunk in one transaction, under the group's lock, from the progress
    stored on the locked delivery row (another worker may have applied chunks meanwhile); the last
    chunk also settles the incident and marks the delivery processed. Returns the delivery's
    results once it is processed (by this chunk or another worker), else None."""
    with transaction.atomic():
        locked = (
            AlertDelivery.objects.select_for_update()
            .only("state", "result", "applied_alerts", "resolved_in_incident")
            .get(pk=delivery_pk)
        )
        if locked.state == DeliveryState.PROCESSED:
            return locked.result
        start = locked.applied_alerts
        alerts = batch.alerts[start : start + CHUNK_SIZE]
        outcome = _Outcome(results=dict(locked.result), resolved_in_current=locked.resolved_in_incident)
        # Not select_related: after waiting for the lock, Postgres re-reads the group row but not a
        # joined incident committed meanwhile (it would come back empty).
        group = AlertGroup.objects.select_for_update().get(pk=group_pk)
        _apply(group, integration, alerts, outcome)
        if outcome.opened is not None and integration.run_first_look:
            opened, alertname = outcome.opened, outcome.first_alertname
            transaction.on_commit(lambda: _first_look(opened, alertname, integration))
        elif outcome.opened is not None:
            first_look.record_first_look_off(outcome.opened, integration)
        locked.applied_alerts = start + len(alerts)
        locked.result = outcome.results
        locked.resolved_in_incident = outcome.resolved_in_current
        progress = ["applied_alerts", "result", "resolved_in_incident"]
        if locked.applied_alerts < len(batch.alerts):
            group.save(update_fields=["incident", "updated_at"])
            locked.save(update_fields=progress)
            return None
        _settle(group, batch, outcome)
        group.group_labels = batch.group_labels
        group.external_url = batch.external_url
        group.save(update_fields=["incident", "group_labels", "external_url", "truncated_alerts", "updated_at"])
        locked.state = DeliveryState.PROCESSED
        locked.processed_at = timezone.now()
        locked.save(update_fields=["state", "processed_at", *progress])
    return outcome.results


def _settle(group: AlertGroup, batch: Batch, outcome: _Outcome) -> None:
    now = timezone.now()
    incident = group.open_incident
    _note_truncation(incident, group, batch, now)
    if incident is not None and outcome.resolved_in_current:
        _mitigate_when_all_resolved(incident, now)


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
        current = {}
        if incident is not None:
            rows = Alert.objects.filter(incident=incident, fingerprint__in=fingerprints)
            current = {row.fingerprint: row for row in rows}
            for row in current.values():
                row.incident = incident  # the timeline entries name it; no query per row
        earlier = {}
        for row in (
            Alert.objects.filter(group=group, fingerprint__in=fingerprints)
            .exclude(incident=incident)
            .select_related("incident")
            .order_by("id")
        ):
            earlier[row.fingerprint] = row  # the latest earlier incident wins
        return cls(current, earlier)

    def opens(self, alert: NormalisedAlert) -> bool:
        """Whether the alert is news to the group's earlier incidents: not the occurrence a person
        already handled, nor one already over there."""
        row = self.earlier.get(alert.fingerprint)
        if row is None:
            return True
        if alert.status == AlertStatus.FIRING:
            return alert.starts_at > (row.ends_at if row.status == AlertStatus.RESOLVED else row.starts_at)
        return row.status == AlertStatus.RESOLVED and alert.starts_at > row.ends_at


@dataclass
class _Writes:
    """What applying a chunk changes, written in bulk: one INSERT for new rows, one upsert for
    changed ones, and the timeline entries (grouped when many alerts changed the same way)."""

    new: list[Alert] = field(default_factory=list)
    changed: dict[int, Alert] = field(default_factory=dict)
    events: list[tuple[Incident, Alert, str, datetime]] = field(default_factory=list)

    def add(self, row: Alert) -> None:
        self.new.append(row)

    def change(self, row: Alert) -> None:
        if row.pk is not None:
            self.changed[row.pk] = row

    def event(self, incident: Incident, row: Alert, what: str, at: datetime) -> None:
        self.events.append((incident, row, what, at))

    def save(self) -> None:
        if self.new:
            Alert.objects.bulk_create(self.new)
        if self.changed:
            # An upsert on the (incident, fingerprint) key rather than bulk_update: its CASE WHEN per
            # field grows with the rows squared (17 s for 1 000 alerts); this stays linear.
            Alert.objects.bulk_create(
                list(self.changed.values()),
                update_conflicts=True,
                unique_fields=["incident", "fingerprint"],
                update_fields=ROW_FIELDS,
            )
        alert_events.record(self.events)


@dataclass
class _Chunk:
    """What applying one chunk of alerts works with."""

    group: AlertGroup
    integration: Integration
    incident: Incident | None
    known: _Known
    now: datetime
    writes: _Writes = field(default_factory=_Writes)

    def new_row(self, alert: NormalisedAlert, status: str, ends_at: datetime | None = None) -> Alert:
        row = Alert(
            integration=self.integration, group=self.group, incident=self.incident, fingerprint=alert.fingerprint
        )
        _copy(row, alert, self.now)
        row.status, row.starts_at, row.ends_at = status, alert.starts_at, ends_at
        self.writes.add(row)
        self.known.current[alert.fingerprint] = row  # a second copy in the same delivery finds it
        return row


def _apply(group: AlertGroup, integration: Integration, alerts: list[NormalisedAlert], outcome: _Outcome) -> None:
    now = timezone.now()
    incident = group.open_incident
    known = _Known.load(group, incident, [a.fingerprint for a in alerts])
    if incident is None:
        incident = _open_for(group, integration, alerts, known, outcome, now)
    chunk = _Chunk(group, integration, incident, known, now)
    for alert in alerts:
        row = known.current.get(alert.fingerprint)
        apply = _firing if alert.status == AlertStatus.FIRING else _resolved
        result = apply(chunk, alert, row)
        outcome.results[alert.fingerprint] = result
        outcome.resolved_in_current |= result == "resolved" and incident is not None
    chunk.writes.save()


def _open_for(group, integration, alerts, known: _Known, outcome: _Outcome, now) -> Incident | None:
    """The group's new incident, opened by its first alert that is news: a firing one if there is,
    else one that already resolved (its resolve arrived before its firing, or the firing was lost)."""
    news = [a for a in alerts if known.opens(a)]
    opener = next((a for a in news if a.status == AlertStatus.FIRING), news[0] if news else None)
    if opener is None:
        return None
    incident = _open_incident(integration, opener, now)
    group.incident = incident
    outcome.opened = incident
    outcome.first_alertname = opener.labels.get("alertname", "")
    return incident


def _note_truncation(incident: Incident | None, group: AlertGroup, batch: Batch, now: datetime) -> None:
    truncated = batch.truncated_alerts
    if incident is not None and truncated and truncated != group.truncated_alerts:
        TimelineEvent.record(
            incident,
            kind=EventKind.ALERT,
            body=(
                f"Alertmanager left {truncated} more alerts of this group out of the notification "
                f"(its max_alerts limit); see {alert_events.link('Alertmanager', batch.external_url)}."
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


def _firing(chunk: _Chunk, alert: NormalisedAlert, row: Alert | None) -> str:
    """startsAt decides: a firing that started before its row's resolve ended is that occurrence,
    already over, whichever arrived first; one that started later is a new occurrence."""
    writes = chunk.writes
    if row is not None:
        if row.status == AlertStatus.FIRING:
            _copy(row, alert, chunk.now)
            row.starts_at = max(row.starts_at, alert.starts_at)
            writes.change(row)
            return "unchanged"
        if alert.starts_at <= row.ends_at:
            return "stale"  # the firing of an occurrence that is already resolved
        _copy(row, alert, chunk.now)
        row.status, row.starts_at, row.ends_at = AlertStatus.FIRING, alert.starts_at, None
        writes.change(row)
        writes.event(row.incident, row, "Firing again", alert.starts_at)
        return "firing again"
    if chunk.incident is None or not chunk.known.opens(alert):
        return "already handled"
    row = chunk.new_row(alert, AlertStatus.FIRING)
    writes.event(chunk.incident, row, "Firing", alert.starts_at)
    return "firing"


def _resolved(chunk: _Chunk, alert: NormalisedAlert, row: Alert | None) -> str:
    """endsAt decides: a resolve that ends after its row started wins over that firing whichever
    arrived first; a resolved alert without a row is kept resolved, so its late firing finds it."""
    writes, now = chunk.writes, chunk.now
    ends_at = alert.ends_at or now
    earlier = chunk.known.earlier.get(alert.fingerprint)
    target = row
    if target is None and earlier is not None and earlier.status == AlertStatus.FIRING:
        target = earlier  # the incident was resolved by a person before the alert resolved
    if target is not None and target.status == AlertStatus.FIRING:
        if ends_at < target.starts_at:
            return "unchanged"  # the end of an earlier occurrence
        _copy(target, alert, now)
        target.status, target.ends_at = AlertStatus.RESOLVED, ends_at
        target.starts_at = max(target.starts_at, alert.starts_at)
        writes.change(target)
        writes.event(target.incident, target, "Resolved", ends_at)
        return "resolved" if target is row else "resolved (earlier incident)"
    if target is not None:  # resolved already: a later occurrence that fired and resolved unseen moves it on
        if ends_at <= target.ends_at:
            return "unchanged"
        new_occurrence = alert.starts_at > target.ends_at
        _copy(target, alert, now)
        target.starts_at, target.ends_at = max(target.starts_at, alert.starts_at), ends_at
        writes.change(target)
        if not new_occurrence:
            return "unchanged"
        writes.event(target.incident, target, "Fired and resolved", ends_at)
        return "resolved"
    if chunk.incident is None or not chunk.known.opens(alert):
        return "already handled"
    row = chunk.new_row(alert, AlertStatus.RESOLVED, ends_at)
    writes.event(chunk.incident, row, "Fired and resolved", ends_at)
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
