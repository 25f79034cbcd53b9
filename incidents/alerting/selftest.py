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
"""

import json
import uuid
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from incidents.alerting import receive, sources
from incidents.choices import AlertStatus
from incidents.models import AlertDelivery, Integration
from incidents.models.alerts import portal_base_url
from opsportal.errors import DomainError


def can_send(integration: Integration) -> bool:
    source = sources.get(integration.kind)
    return source is not None and source.test_payload is not None


def send_test_alert(integration: Integration, *, by=None) -> AlertDelivery:
    """Fire a test alert now and schedule its resolution. Raises DomainError when the source
    writes no test payload, PayloadError when the intake refuses it, and what intake.store raises."""
    from incidents.tasks import resolve_test_alert

    if not can_send(integration):
        raise DomainError(f"The {integration.get_kind_display()} source cannot write a test alert.")
    test_id = uuid.uuid4().hex
    sent_by = by.get_username() if by is not None else ""
    starts_at = timezone.now()
    delivery = send(integration, test_id, AlertStatus.FIRING, starts_at=starts_at, sent_by=sent_by)
    resolve_test_alert.apply_async(
        (integration.pk, test_id, starts_at.isoformat(), sent_by),
        countdown=settings.TEST_ALERT_RESOLVE_AFTER_SECONDS,
    )
    return delivery


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
