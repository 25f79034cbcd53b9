"""The "send a test alert" button of an integration's page.

The integration's source writes a realistic payload in its sender's format (`Source.test_payload`,
so a new source brings its own), labelled `opsportal_test="true"` and named OpsPortalTestAlert,
and the payload goes through `receive.receive`, the function the intake URL calls: parsed,
validated, stored, queued and applied by the worker like Alertmanager's POST. The incident it
opens is a test (`Incident.is_test`, title "[TEST] …"): it pages nobody, starts no escalation
clock and no first look, sends no notification and says so on its timeline.

It resolves itself through the same path: a task sends the matching "resolved" payload
TEST_ALERT_RESOLVE_AFTER_SECONDS later; the intake moves the incident to mitigated once no alert
fires, and a test incident goes on to resolved (incidents/alerting/receivers.py).

Both publishes are the bounded one (opsportal.broker), since the button is a request. When the
broker does not answer the firing one, the page says so (503) and the stored delivery waits for the
intake's sweep; when it does not answer the resolution's (or that message is lost), nothing holds
it: `resolve_lost`, run by the same sweep, sends the resolution of a portal test alert still firing
well past its time, read back from the alert itself.
"""

import json
import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from incidents.alerting import intake, receive, sources
from incidents.alerting.sources.base import TEST_ALERTNAME, TEST_LABEL
from incidents.choices import AlertStatus, DeliveryState
from incidents.models import Alert, AlertDelivery, Integration
from incidents.models.alerts import portal_base_url
from opsportal import broker
from opsportal.errors import DomainError

logger = logging.getLogger(__name__)
# A test alert still firing this long after its resolution was due lost it; before that, the
# scheduled resolution may still be on its way (a busy queue), and sending a second is only noise.
RESOLUTION_LOST_AFTER = timedelta(minutes=5)
SWEEP_BATCH = 100


def can_send(integration: Integration) -> bool:
    source = sources.get(integration.kind)
    return source is not None and source.test_payload is not None


def send_test_alert(integration: Integration, *, by=None) -> tuple[AlertDelivery, bool]:
    """Fire a test alert now and schedule its resolution. Returns the firing delivery and whether the
    resolution was queued (if not, `resolve_lost` sends it later). Raises DomainError when the source
    writes no test payload, PayloadError when the intake refuses it, and what intake.store raises
    (QueueUnavailable: stored, not queued)."""
    from incidents.tasks import resolve_test_alert

    if not can_send(integration):
        raise DomainError(f"The {integration.get_kind_display()} source cannot write a test alert.")
    test_id = uuid.uuid4().hex
    sent_by = by.get_username() if by is not None else ""
    starts_at = timezone.now()
    delivery = send(integration, test_id, AlertStatus.FIRING, starts_at=starts_at, sent_by=sent_by)
    try:
        broker.publish(
            resolve_test_alert,
            (integration.pk, test_id, starts_at.isoformat(), sent_by),
            countdown=settings.TEST_ALERT_RESOLVE_AFTER_SECONDS,
        )
    except Exception as exc:  # noqa: BLE001 - kombu/redis/amqp raise many kinds; all mean "not queued"
        logger.warning(
            "the resolution of test alert %s of integration %s was not queued (%s: %s); the intake sweep sends it",
            test_id,
            integration.pk,
            type(exc).__name__,
            exc,
        )
        return delivery, False
    return delivery, True


def resolve_lost(now: datetime) -> int:
    """Send the resolution of the portal's test alerts still firing RESOLUTION_LOST_AFTER past the
    time it was due (its publish failed or its message was lost), unless a delivery of their group
    is still pending: the firing one not applied yet, or a resolution on its way. Test alerts that
    their sender labelled (amtool) are the sender's to resolve. Returns how many were sent."""
    due = now - timedelta(seconds=settings.TEST_ALERT_RESOLVE_AFTER_SECONDS) - RESOLUTION_LOST_AFTER
    firing = Alert.objects.filter(
        status=AlertStatus.FIRING,
        alertname=TEST_ALERTNAME,
        starts_at__lt=due,
        **{f"labels__{TEST_LABEL}": "true", "labels__has_key": "test_id"},
    )
    alerts = list(firing.select_related("integration", "group")[:SWEEP_BATCH])
    if not alerts:
        return 0
    pending = AlertDelivery.objects.filter(
        state=DeliveryState.PENDING, group_key__in={a.group.group_key for a in alerts}
    ).values_list("integration_id", "group_key")
    on_their_way = set(pending)
    sent = 0
    for alert in alerts:
        sender = sources.TestAlert.sender_in(alert.annotations)
        if sender is None or (alert.integration_id, alert.group.group_key) in on_their_way:
            continue
        if not can_send(alert.integration):
            continue  # its source is gone or writes no test payload any more
        test_id = str(alert.labels["test_id"])
        try:
            send(alert.integration, test_id, AlertStatus.RESOLVED, starts_at=alert.starts_at, sent_by=sender)
        except intake.QueueUnavailable:
            break  # stored, and queued by the delivery sweep; the broker does not answer the others either
        except sources.PayloadError as exc:  # logged on the integration as a refusal
            logger.warning("the resolution of test alert %s was refused: %s", test_id, exc)
            continue
        sent += 1
    return sent


def send(
    integration: Integration, test_id: str, status: str, *, starts_at: datetime, sent_by: str = ""
) -> AlertDelivery:
    """One test notification (firing, or resolved now) through the intake."""
    source = sources.get(integration.kind)
    test = sources.TestAlert(
        test_id=test_id,
        status=status,
        starts_at=starts_at,
        ends_at=timezone.now() if status == AlertStatus.RESOLVED else None,
        integration_name=integration.name,
        portal_url=portal_base_url() + "/",
        sent_by=sent_by,
    )
    body = json.dumps(source.test_payload(test)).encode()
    delivery, _ = receive.receive(integration, source, body)
    return delivery
