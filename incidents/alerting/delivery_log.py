"""An integration's delivery log: what it was sent lately and what the intake made of it.

Accepted payloads are AlertDelivery rows; duplicates and refusals are IntakeEvent rows (capped,
see incidents/models/intake_log.py). The page merges the latest of both in a constant number of
queries. The incident a delivery opened or updated is its alert group's incident, when that
incident existed before the delivery was applied (a group moves on only to newer incidents, so
an older delivery of a group whose incident is newer has no link rather than a wrong one).
"""

from dataclasses import dataclass
from datetime import datetime

from incidents.choices import DeliveryState, IntakeOutcome
from incidents.models import AlertDelivery, AlertGroup, Incident, IntakeEvent, Integration
from incidents.models.alerts import hash_group_key

LOG_LENGTH = 50


@dataclass
class Entry:
    at: datetime
    outcome: str  # incidents.choices.IntakeOutcome
    status_code: int
    delivery: AlertDelivery | None = None  # the stored payload (accepted) or the one repeated (duplicate)
    reason: str = ""
    body_excerpt: str = ""
    body_size: int = 0
    incident: Incident | None = None

    @property
    def alert_count(self) -> int | None:
        return self.delivery.alert_count if self.delivery is not None else None

    @property
    def pending(self) -> bool:
        return self.delivery is not None and self.delivery.state == DeliveryState.PENDING


@dataclass
class Log:
    entries: list[Entry]
    last_received_at: datetime | None
    last_payload: dict | None  # the latest accepted payload, as the sender wrote it

    @property
    def waiting(self) -> bool:
        """A delivery is still pending or a test incident still open: the page keeps refreshing."""
        return any(e.pending or (e.incident is not None and e.incident.is_test and e.incident.is_open) for e in self)

    def __iter__(self):
        return iter(self.entries)


def recent(integration: Integration, limit: int = LOG_LENGTH) -> Log:
    light = ("payload", "result")
    deliveries = list(AlertDelivery.objects.filter(integration=integration).defer(*light).order_by("-id")[:limit])
    events = list(IntakeEvent.objects.recent(integration, limit).defer(*(f"delivery__{f}" for f in light)))
    entries = [Entry(d.received_at, IntakeOutcome.ACCEPTED, 202, delivery=d) for d in deliveries]
    entries += [
        Entry(
            e.received_at,
            e.outcome,
            e.status_code,
            delivery=e.delivery,
            reason=e.reason,
            body_excerpt=e.body_excerpt,
            body_size=e.body_size,
        )
        for e in events
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    entries = entries[:limit]
    _link_incidents(integration, entries)
    last_payload = None
    if deliveries:
        last_payload = AlertDelivery.objects.filter(pk=deliveries[0].pk).values_list("payload", flat=True).first()
    return Log(entries, entries[0].at if entries else None, last_payload)


def _link_incidents(integration: Integration, entries: list[Entry]) -> None:
    hashes = {hash_group_key(e.delivery.group_key) for e in entries if e.delivery is not None}
    if not hashes:
        return
    groups = AlertGroup.objects.filter(integration=integration, key_hash__in=hashes, incident__isnull=False)
    incidents = {g.key_hash: g.incident for g in groups.select_related("incident")}
    for entry in entries:
        delivery = entry.delivery
        if delivery is None or delivery.processed_at is None:
            continue
        incident = incidents.get(hash_group_key(delivery.group_key))
        if incident is not None and incident.created_at <= delivery.processed_at:
            entry.incident = incident
