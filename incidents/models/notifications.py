"""Outgoing webhooks: endpoints and every delivery made to them.

A delivery is written in the same transaction as the change it announces (so a rolled-back
change announces nothing), then sent by a Celery task after commit. Failed sends are retried
with exponential backoff by the periodic sweep for up to WEBHOOK_RETRY_WINDOW; a delivery can
be sent again by hand at any time (admin, portal, POST /api/ops/webhooks/redeliver).
"""

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.choices import WebhookDeliveryState
from incidents.models.incident import Incident
from incidents.notifications.registry import (
    EVENT_MAX_LENGTH,
    FORMAT_MAX_LENGTH,
    event_choices,
    event_values,
    webhook_format_choices,
)
from opsportal import broker
from opsportal.errors import DomainError

RETRY_WINDOW = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY_INTERVAL = timedelta(hours=1)
SEND_LEASE = timedelta(minutes=2)  # a worker that dies mid-send is retried after this
SIGNATURE_HEADER = "X-OpsPortal-Signature-256"
# The time of the attempt (Unix seconds), signed with the body so a receiver can refuse replays.
TIMESTAMP_HEADER = "X-OpsPortal-Timestamp"


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _all_events() -> list[str]:
    return event_values()


class WebhookEndpoint(models.Model):
    name = models.CharField(max_length=120, unique=True)
    url = models.URLField(max_length=2000, validators=[URLValidator(schemes=["http", "https"])])
    # Choices are the registered webhook formats (incidents/notifications/formats/).
    format = models.CharField(max_length=FORMAT_MAX_LENGTH, choices=webhook_format_choices, default="json")
    secret = models.CharField(
        max_length=200,
        default=_new_secret,
        help_text=(
            f"Signs every request: {SIGNATURE_HEADER}: sha256=HMAC-SHA256(timestamp + '.' + body, secret) "
            f"in hex, with the timestamp in {TIMESTAMP_HEADER}."
        ),
    )
    events = models.JSONField(
        default=_all_events,
        blank=True,
        help_text="Events broadcast to this endpoint. Escalation contacts get escalations of their level anyway.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        known = event_values()
        if not isinstance(self.events, list) or not all(isinstance(e, str) and e in known for e in self.events):
            raise ValidationError({"events": f"A list of: {', '.join(known)}."})

    def sign(self, body: bytes, timestamp: int) -> str:
        """The signature of one attempt: over `timestamp.body`, so a captured request replayed later
        carries a stale timestamp the receiver refuses, and changing the timestamp breaks the signature."""
        signed = str(int(timestamp)).encode() + b"." + body
        return "sha256=" + hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """Wait before retry number `attempts` (1-based): 30 s, 1 min, 2 min … capped at one hour."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY_INTERVAL)


class WebhookDeliveryQuerySet(models.QuerySet):
    def due(self, now: datetime):
        return self.filter(state=WebhookDeliveryState.PENDING, next_retry_at__lte=now)


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Choices are the events apps register (incidents.notifications.registry.register_event).
    event = models.CharField(max_length=EVENT_MAX_LENGTH, choices=event_choices)
    source_key = models.CharField(
        max_length=120, help_text="What caused it (e.g. timeline:42); one delivery per endpoint and cause."
    )
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=WebhookDeliveryState.choices, default=WebhookDeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    retry_until = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    redelivered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    redelivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # A notification task that runs twice must not announce the same thing twice.
            models.UniqueConstraint(fields=["endpoint", "event", "source_key"], name="webhookdelivery_source_uniq"),
        ]
        indexes = [
            # The retry sweep: pending deliveries whose next attempt is due.
            models.Index(fields=["next_retry_at"], name="webhookdelivery_due_idx", condition=Q(state="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint} ({self.state})"

    def body(self) -> bytes:
        """The exact bytes sent and signed; stable across retries."""
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True, default=str).encode()

    # --- verbs ----------------------------------------------------------------------------

    def claim(self, now: datetime) -> "WebhookDelivery | None":
        """Take the delivery for one attempt if it is due; pushes next_retry_at out by a lease
        so a second worker (or the sweep) leaves it alone while this one sends."""
        with transaction.atomic():
            locked = (
                type(self).objects.select_for_update(of=("self",)).select_related("endpoint").filter(pk=self.pk).first()
            )
            if locked is None or locked.state != WebhookDeliveryState.PENDING:
                return None
            if locked.next_retry_at is None or locked.next_retry_at > now:
                return None
            locked.next_retry_at = now + SEND_LEASE
            locked.save(update_fields=["next_retry_at"])
        return locked

    def record_attempt(self, *, now: datetime, status_code: int | None, error: str) -> None:
        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            locked.attempts += 1
            locked.last_attempt_at = now
            locked.last_status_code = status_code
            locked.last_error = error[:2000]
            if not error:
                locked.state = WebhookDeliveryState.DELIVERED
                locked.delivered_at = now
                locked.next_retry_at = None
            else:
                retry_at = now + backoff(locked.attempts)
                if retry_at > locked.retry_until:
                    locked.state = WebhookDeliveryState.FAILED
                    locked.next_retry_at = None
                else:
                    locked.next_retry_at = retry_at
            locked.save()
        self.refresh_from_db()

    def redeliver(self, *, by) -> "WebhookDelivery":
        """Send again now (also after success: the receiver lost it), with a fresh retry window."""
        from incidents.tasks import deliver_webhook

        with transaction.atomic():
            locked = type(self).objects.select_for_update().get(pk=self.pk)
            if not locked.endpoint.enabled:
                raise DomainError(f"The endpoint {locked.endpoint.name} is disabled; enable it first.")
            now = timezone.now()
            locked.state = WebhookDeliveryState.PENDING
            locked.next_retry_at = now
            locked.retry_until = now + RETRY_WINDOW
            locked.redelivered_by = by
            locked.redelivered_at = now
            locked.save()
            # A broker that does not answer leaves it due: the webhook sweep sends it.
            transaction.on_commit(lambda: broker.publish_each(deliver_webhook, [locked.pk], what="webhook delivery"))
        self.refresh_from_db()
        return self
