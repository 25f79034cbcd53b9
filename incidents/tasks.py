"""Celery tasks of the incidents app. Thin: they take primary keys and call verbs/services,
which re-read and lock the rows and return early when the work is already done.

Webhook retries are driven by `retry_webhook_deliveries`, a periodic sweep of due rows, rather
than by countdown/eta tasks: an eta task of several hours sits in a worker's memory and, on
Redis, comes back twice once the broker's visibility timeout (1 h) passes; a row with
`next_retry_at` survives restarts, is visible in the admin and the portal, and can be redelivered
by hand without racing a hidden queued retry.
"""

import logging
import random
from contextlib import suppress
from datetime import datetime, timedelta
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from incidents import metrics
from incidents.alerting import intake, notify, paging, selftest
from incidents.choices import AlertStatus, DeliveryState, WebhookDeliveryState
from incidents.models import (
    AlertDelivery,
    Integration,
    Page,
    PostIncidentReview,
    SlaClock,
    UnqueuedEmail,
    WebhookDelivery,
)
from incidents.notifications.formats.email import single_line

logger = logging.getLogger(__name__)
REQUEUE_AFTER = timedelta(minutes=5)
SWEEP_BATCH = 500


@shared_task(acks_late=True)
def mark_overdue_reviews() -> int:
    """Beat job: stamp each overdue review once, note it on the incident and e-mail its owner."""
    now = timezone.now()
    notified = 0
    for review_id in (
        PostIncidentReview.objects.overdue(now).filter(overdue_notified_at__isnull=True).values_list("pk", flat=True)
    ):
        review = PostIncidentReview.objects.select_related("incident", "owner").get(pk=review_id)
        if not review.mark_overdue(now=now):
            continue
        notified += 1
        notify.notify_review_overdue(
            review.incident,
            source_key=f"review:{review.pk}:overdue",
            text=f"Post-incident review of {review.incident.reference} is overdue: {review.incident.title}",
            extra={"review": {"id": review.pk, "due_at": review.due_at.isoformat()}},
        )
        owner = review.owner
        if owner is not None and owner.email:
            send_mail(
                subject=f"[Ops Portal] Review of {review.incident.reference} is overdue",
                message=(
                    f"The post-incident review of {review.incident.reference} “{review.incident.title}” "
                    f"was due {timezone.localtime(review.due_at):%Y-%m-%d %H:%M %Z}.\n\n"
                    f"{settings.PORTAL_BASE_URL}/reviews/{review.pk}/\n"
                ),
                from_email=None,
                recipient_list=[owner.email],
                fail_silently=False,
            )
        else:
            logger.warning("overdue review %s has no owner e-mail to notify", review.pk)
    return notified


# Deadlocks, serialisation failures and database outages are retried; the work is idempotent.
# The back-off (5 s doubled up to 120 s, each wait drawn between its half and its whole) spreads
# the retries over 6 to 12 minutes, so an outage of a few minutes is ridden out by the retries
# alone. A delivery whose retries are spent is noted in the cache (Redis usually outlives a
# database outage) and the next sweep queues it at once, whatever its age (README "Outages").
DELIVERY_RETRIES = 10
DELIVERY_BACKOFF, DELIVERY_BACKOFF_MAX = 5, 120
GAVE_UP_KEY = "intake:deliveries-gave-up"


def delivery_backoff(retries: int) -> float:
    """Seconds before retry number `retries` + 1."""
    ceiling = min(DELIVERY_BACKOFF * 2**retries, DELIVERY_BACKOFF_MAX)
    return random.uniform(ceiling / 2, ceiling)  # jitter, not security


@shared_task(bind=True, max_retries=DELIVERY_RETRIES)
def process_alert_delivery(self, delivery_id: int) -> None:
    try:
        intake.apply_delivery(delivery_id)
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= self.max_retries:
            _gave_up(delivery_id)
            raise
        raise self.retry(exc=exc, countdown=delivery_backoff(self.request.retries)) from exc


def _gave_up(delivery_id: int) -> None:
    logger.error("alert delivery %s: retries spent; the next sweep queues it again", delivery_id)
    try:
        noted = cache.get(GAVE_UP_KEY) or []
        cache.set(GAVE_UP_KEY, sorted({*noted, delivery_id})[-SWEEP_BATCH:], timeout=None)
    except Exception as exc:  # noqa: BLE001 - without the cache, the sweep's age threshold still finds it
        logger.warning("could not note alert delivery %s for the sweep: %s", delivery_id, exc)


@shared_task(acks_late=True)
def resolve_test_alert(integration_id: int, test_id: str, starts_at: str, sent_by: str = "") -> None:
    """The "resolved" notification of a test alert, sent through the intake like the firing one."""
    integration = Integration.objects.filter(pk=integration_id).first()
    if integration is None:
        return  # deleted since: nothing left to resolve
    selftest.send(
        integration,
        test_id,
        AlertStatus.RESOLVED,
        starts_at=datetime.fromisoformat(starts_at),
        sent_by=sent_by,
    )


@shared_task
def requeue_alert_deliveries() -> int:
    """Queue again the stored deliveries whose queue message was lost (broker restart, 503 path),
    and at once those whose retries were spent during a database outage; then send the resolution
    of the test alerts whose scheduled one was lost (selftest.resolve_lost). Returns the number of
    deliveries queued."""
    now = timezone.now()
    try:
        gave_up = cache.get(GAVE_UP_KEY) or []
    except Exception as exc:  # noqa: BLE001 - without the cache the age threshold alone decides
        logger.warning("could not read the deliveries that gave up: %s", exc)
        gave_up = []
    pending = AlertDelivery.objects.filter(state=DeliveryState.PENDING)
    stale = list(
        pending.filter(Q(enqueued_at__lt=now - REQUEUE_AFTER) | Q(pk__in=gave_up)).values_list("pk", flat=True)[
            :SWEEP_BATCH
        ]
    )
    AlertDelivery.objects.filter(pk__in=stale).update(enqueued_at=now)
    for pk in stale:
        process_alert_delivery.delay(pk)
    if gave_up:
        with suppress(Exception):  # a delivery noted meanwhile waits for the age threshold at worst
            cache.delete(GAVE_UP_KEY)
    resolved = selftest.resolve_lost(now)
    if resolved:
        logger.info("sent the lost resolution of %d test alert(s)", resolved)
    return len(stale)


@shared_task
def run_escalations() -> dict:
    """Escalate unacknowledged incidents, record SLA breaches and queue the pages that are due
    (delayed notification rules, retries of failed sends, pages whose first publish failed), then
    the notification e-mails that could not be queued."""
    now = timezone.now()
    done = {"escalated": 0, "ack": 0, "resolve": 0}
    for pk in Page.objects.due(now).values_list("pk", flat=True)[:SWEEP_BATCH]:
        send_page.delay(pk)
    for clock in SlaClock.objects.due_escalation(now)[:SWEEP_BATCH]:
        done["escalated"] += clock.escalate(now)
    for clock in SlaClock.objects.due_ack_breach(now)[:SWEEP_BATCH]:
        done["ack"] += clock.record_breach("ack", now)
    for clock in SlaClock.objects.due_resolve_breach(now)[:SWEEP_BATCH]:
        done["resolve"] += clock.record_breach("resolve", now)
    queue_unqueued_emails()
    return done


def queue_unqueued_emails() -> int:
    """Queue the notification e-mails whose publish failed (UnqueuedEmail), oldest first. Each row
    is locked (a second sweep skips it) and deleted only once its message is queued: a sweep that
    dies in between sends that e-mail twice, never zero times. The publish happens inside the
    transaction on purpose: the task takes the e-mail itself as arguments, not the row."""
    queued = 0
    for pk in UnqueuedEmail.objects.values_list("pk", flat=True)[:SWEEP_BATCH]:
        with transaction.atomic():
            row = UnqueuedEmail.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if row is None:
                continue  # queued by another sweep meanwhile
            send_notification_email.delay(
                row.subject, row.body, row.recipients, incident_id=row.incident_id, event=row.event
            )
            row.delete()
        queued += 1
    return queued


@shared_task(acks_late=True)
def send_page(page_id: int) -> None:
    """Send one due page (a redelivered task finds it claimed or sent and stops)."""
    page = paging.claim(page_id, timezone.now())
    if page is not None:
        paging.send(page, timezone.now())


@shared_task
def deliver_webhook(delivery_id: int) -> None:
    delivery = WebhookDelivery.objects.filter(pk=delivery_id).first()
    if delivery is None:
        return
    claimed = delivery.claim(timezone.now())
    if claimed is None:
        return  # delivered, given up, not due yet, or another worker is sending it
    status_code, error = notify.send(claimed)
    claimed.record_attempt(now=timezone.now(), status_code=status_code, error=error)
    metrics.webhook_attempts_total.labels(result="failed" if error else "delivered").inc()
    if error:
        logger.warning("webhook delivery %s to %s failed: %s", claimed.pk, claimed.endpoint.url, error)
        if claimed.state == WebhookDeliveryState.FAILED:  # out of retries: given up
            notify.record_failed(
                "webhook",
                incident_id=claimed.incident_id,
                event=claimed.event,
                what=f"webhook {claimed.endpoint.name}, {claimed.attempts} attempt(s)",
                error=error,
            )


@shared_task
def retry_webhook_deliveries() -> int:
    due = list(WebhookDelivery.objects.due(timezone.now()).values_list("pk", flat=True)[:SWEEP_BATCH])
    for pk in due:
        deliver_webhook.delay(pk)
    return len(due)


EMAIL_MAX_RETRIES = 6


@shared_task(bind=True, max_retries=EMAIL_MAX_RETRIES)
def send_notification_email(
    self, subject: str, body: str, recipients: list[str], *, incident_id: int | None = None, event: str = ""
) -> None:
    """Sends a page. A mail server that is down is retried with backoff (30 s, 1 min … 16 min); when
    that runs out, or the message cannot be sent at all, the failure is counted and written on the
    incident's timeline: a page is never dropped silently."""
    what = f"e-mail to {len(recipients)} recipient(s)"
    try:
        send_mail(single_line(subject), body, None, recipients)
    except (SMTPException, OSError) as exc:
        if self.request.retries < EMAIL_MAX_RETRIES:
            raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from None
        notify.record_failed("email", incident_id=incident_id, event=event, what=what, error=_reason(exc))
    except Exception as exc:  # a message that cannot be built: retrying will not help, telling people will
        logger.exception("notification e-mail for %s could not be sent", event or "an incident")
        notify.record_failed("email", incident_id=incident_id, event=event, what=what, error=_reason(exc))


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
