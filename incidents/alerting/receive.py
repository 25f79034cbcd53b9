"""What the intake URL does with a body once its token named the integration, and the log it keeps.

The HTTP view (incidents/api/intake.py) and the "send a test alert" button
(incidents/alerting/selftest.py) both call `receive`, so a test alert goes through the same
parsing, validation, storing and queueing as Alertmanager's POST. Duplicates and refusals are
logged on the integration (IntakeEvent, capped); accepted payloads are their AlertDelivery rows.
"""

import logging

from django.db import DatabaseError, transaction
from django.utils import timezone

from incidents.alerting import intake, sources
from incidents.choices import IntakeOutcome
from incidents.models import AlertDelivery, IntakeEvent, Integration
from incidents.models.intake_log import body_excerpt

logger = logging.getLogger(__name__)


def receive(integration: Integration, source: sources.Source, body: bytes) -> tuple[AlertDelivery, bool]:
    """Parse, validate, store and queue one body. Returns (delivery, created); raises PayloadError
    (logged as a refusal), intake.QueueUnavailable or DatabaseError as intake.store does."""
    try:
        raw = sources.read_json(body)
        batch = source.normalise(raw)
    except sources.PayloadError as exc:
        refuse(integration, str(exc), status_code=400, body=body)
        raise
    delivery, created = intake.store(integration, raw, batch)
    if not created:
        _log(integration, IntakeOutcome.DUPLICATE, status_code=202, delivery=delivery, body_size=len(body))
    return delivery, created


def refuse(integration: Integration, reason: str, *, status_code: int, body: bytes = b"", size: int = 0) -> None:
    """Log a refused request of a known integration, with the start of its body."""
    _log(
        integration,
        IntakeOutcome.REFUSED,
        status_code=status_code,
        reason=reason,
        body_excerpt=body_excerpt(body),
        body_size=size or len(body),
    )


def _log(integration: Integration, outcome: str, **fields) -> None:
    # The log must never turn the intake's answer into an error: a failed write is only logged.
    try:
        with transaction.atomic():
            IntakeEvent.record(integration, outcome, received_at=timezone.now(), **fields)
    except DatabaseError:
        logger.exception("alert intake: could not log a %s request of integration %s", outcome, integration.pk)
