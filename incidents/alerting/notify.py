"""Who hears about what, and how a webhook request is made.

- incident.created: the L1 contacts (the on-call engineer is paged: incidents/alerting/paging.py)
  and every endpoint that subscribes to it.
- incident.status_changed: every subscribed endpoint, and by email the contacts of the levels
  the incident has reached and the people paged (they want to hear it was acknowledged/resolved).
- incident.escalated: the contacts of the level reached (paged) and every subscribed endpoint.
- review.overdue: every subscribed endpoint (mark_overdue_reviews e-mails the review's owner).
- report.received: every subscribed endpoint (a problem report from the status page, without the
  reporter's name or e-mail).
- Events other apps register: every subscribed endpoint, through notify().

Webhook deliveries are rows written in the caller's transaction and sent after commit; email is
sent by a task after commit. These publishes run in requests, so they use the bounded publish
(opsportal.broker): when the broker does not answer, a delivery row waits for the webhook sweep
and an e-mail is kept (UnqueuedEmail) for the escalation sweep. Each endpoint's body is written
by its format (incidents/notifications/formats/).
"""

import logging
import time
import urllib.error
import urllib.request
from datetime import datetime

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from incidents import metrics
from incidents.alerting import paging
from incidents.choices import EscalationLevel, EventKind
from incidents.models import (
    EscalationContact,
    Incident,
    Page,
    TimelineEvent,
    UnqueuedEmail,
    WebhookDelivery,
    WebhookEndpoint,
)
from incidents.models.alerts import portal_base_url
from incidents.models.notifications import RETRY_WINDOW, SIGNATURE_HEADER, TIMESTAMP_HEADER
from incidents.models.report import REPORT_RECEIVED
from incidents.models.review import REVIEW_OVERDUE
from incidents.notifications.formats.email import single_line
from incidents.notifications.registry import Notification, event_values, get_format
from incidents.signals import ESCALATED, INCIDENT_CREATED, STATUS_CHANGED
from opsportal import broker

logger = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10


def incident_url(incident: Incident) -> str:
    return portal_base_url() + reverse("incidents:detail", args=[incident.pk])


def incident_data(incident: Incident) -> dict:
    return {
        "id": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "severity": incident.severity,
        "priority": incident.priority,
        "status": incident.status,
        "url": incident_url(incident),
        "services": sorted(s.slug for s in incident.services.all()),
        "commander": incident.commander.get_username() if incident.commander_id else None,
        "started_at": _iso(incident.started_at),
        "detected_at": _iso(incident.detected_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "mitigated_at": _iso(incident.mitigated_at),
        "resolved_at": _iso(incident.resolved_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def notify_created(incident: Incident, *, source_event) -> None:
    text = f"[{incident.severity}] {incident.reference} opened: {incident.title}"
    _notify(
        INCIDENT_CREATED,
        incident,
        source_key=f"timeline:{source_event.pk}",
        text=text,
        levels=[EscalationLevel.L1],
    )


def notify_status_changed(incident: Incident, *, previous: str, status: str, by, source_event) -> None:
    who = f" by {by.get_username()}" if by else ""
    text = f"[{incident.severity}] {incident.reference} {previous} → {status}{who}: {incident.title}"
    from incidents.models import SlaClock

    level = SlaClock.objects.filter(pk=incident.pk).values_list("level", flat=True).first() or 1
    reached = range(1, level + 1)
    _notify(
        STATUS_CHANGED,
        incident,
        source_key=f"timeline:{source_event.pk}",
        text=text,
        extra={"previous_status": previous, "status": status, "by": by.get_username() if by else None},
        email_levels=list(reached),
    )


def notify_escalated(incident: Incident, *, level: int, source_event) -> None:
    label = EscalationLevel(level).label
    text = f"[{incident.severity}] {incident.reference} escalated to {label}, not acknowledged: {incident.title}"
    _notify(
        ESCALATED,
        incident,
        source_key=f"timeline:{source_event.pk}",
        text=text,
        extra={"level": level, "level_label": label},
        levels=[level],
    )


def notify_review_overdue(incident: Incident, *, source_key: str, text: str, extra: dict | None = None) -> None:
    """Announce an overdue post-incident review to subscribed endpoints (the review's owner is
    e-mailed by mark_overdue_reviews itself). Once per source_key."""
    with transaction.atomic():
        _notify(REVIEW_OVERDUE, incident, source_key=source_key, text=text, extra=extra)


def notify(
    event: str,
    *,
    text: str,
    data: dict,
    url: str,
    reference: str,
    source_key: str,
    incident: Incident | None = None,
) -> None:
    """Announce a registered `event` to every enabled endpoint subscribed to it, each in its format,
    after commit; once per endpoint and `source_key`. `data` is what the event is about (the generic
    JSON body holds it beside event, text and occurred_at); `url` and `reference` name the page to
    open. Call it inside the transaction that makes the change it announces."""
    notification = _notification(event, text=text, data=data, url=url, reference=reference)
    _deliver(notification, _subscribers(event), source_key=source_key, incident=incident)


def _notification(event: str, *, text: str, data: dict, url: str, reference: str, summary: str = "") -> Notification:
    if event not in event_values():
        raise ValueError(f"Unknown notification event {event!r}: register it first (register_event).")
    body = {"event": event, "text": text, "occurred_at": timezone.now().isoformat(), **data}
    return Notification(event=event, text=text, data=body, url=url, reference=reference, summary=summary)


def _notify(
    event: str,
    incident: Incident,
    *,
    source_key: str,
    text: str,
    extra: dict | None = None,
    levels: list[int] = (),
    email_levels: list[int] = (),
) -> None:
    """An incident's event: subscribed endpoints, the endpoints of the contacts at `levels`, a page
    to each person the contacts at `levels` reach (incidents/alerting/paging.py), and e-mail to the
    contacts of `email_levels` and to everyone paged for the incident so far."""
    contacts = list(
        EscalationContact.objects.filter(level__in={*levels, *email_levels}).select_related("user", "endpoint")
    )
    endpoints = {e.pk: e for e in _subscribers(event)}
    for contact in contacts:
        if contact.level in levels and contact.endpoint_id and contact.endpoint.enabled:
            endpoints[contact.endpoint_id] = contact.endpoint
    notification = _notification(
        event,
        text=text,
        data={"incident": incident_data(incident), **(extra or {})},
        url=incident_url(incident),
        reference=incident.reference,
        summary=incident.summary,
    )
    _deliver(notification, endpoints.values(), source_key=source_key, incident=incident)
    for level in levels:
        paging.page_level(incident, level, source_key=source_key, text=text)
    emails = set(_emails([c for c in contacts if c.level in email_levels]))
    if email_levels:
        emails |= set(
            Page.objects.escalations()
            .filter(incident=incident, user__isnull=False, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
        emails |= set(
            Page.objects.escalations().filter(incident=incident).exclude(address="").values_list("address", flat=True)
        )
    emails = sorted(emails)
    if emails:
        mail = email_for(notification)
        # robust: the change is committed; a failure to keep the e-mail is logged, not a 500.
        transaction.on_commit(lambda: _queue_email(mail, emails, incident_id=incident.pk, event=event), robust=True)


def _queue_email(mail: dict, emails: list[str], *, incident_id: int | None, event: str) -> None:
    """Queue a notification e-mail with the bounded publish (this runs after a request's commit);
    when the broker does not answer, keep it for the escalation sweep (UnqueuedEmail)."""
    from incidents.tasks import send_notification_email

    kwargs = {"incident_id": incident_id, "event": event}
    try:
        broker.publish(send_notification_email, (mail["subject"], mail["body"], emails), kwargs)
    except Exception as exc:  # noqa: BLE001 - kombu/redis/amqp raise many kinds; all mean "not queued"
        error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "notification e-mail %s of incident %s to %d recipient(s) not queued (%s); kept for the sweep",
            event,
            incident_id,
            len(emails),
            error,
        )
        UnqueuedEmail.objects.create(
            incident_id=incident_id,
            event=event,
            subject=mail["subject"],
            body=mail["body"],
            recipients=emails,
            error=error[:500],
        )


def email_for(notification: Notification) -> dict:
    """The e-mail format's subject and body; a format that fails still leaves a plain e-mail, so a
    page is never lost to formatting."""
    try:
        mail = get_format("email").render(notification)
    except Exception:  # any bug in a format: the page must still go out
        logger.exception("e-mail format failed for %s; sending the plain text", notification.event)
        mail = {"subject": notification.text, "body": f"{notification.text}\n\n{notification.url}\n"}
    return {"subject": single_line(mail["subject"]), "body": mail["body"]}


def record_failed(channel: str, *, incident_id: int | None, event: str, what: str, error: str) -> None:
    """A notification given up on: counted (notifications_failed_total{channel}) and, for an
    incident's event, written on its timeline so the people on the incident know who was not told."""
    metrics.notifications_failed_total.labels(channel=channel).inc()
    logger.error("%s notification %s failed: %s: %s", channel, event, what, error)
    incident = Incident.objects.filter(pk=incident_id).first() if incident_id else None
    if incident is None:
        return
    TimelineEvent.record(
        incident,
        kind=EventKind.COMMUNICATION,
        body=f"Notification failed: the {channel} for {event or 'this incident'} ({what}) was not sent: "
        f"{error[:500]}. Tell them another way.",
    )


def _emails(contacts: list[EscalationContact]) -> list[str]:
    emails = set()
    for contact in contacts:
        if contact.user_id and contact.user.email and contact.user.is_active:
            emails.add(contact.user.email)
        elif contact.email:
            emails.add(contact.email)
    return sorted(emails)


def _subscribers(event: str) -> list[WebhookEndpoint]:
    """Enabled endpoints whose event list names `event` (a short table: filtered here, not in SQL)."""
    return [e for e in WebhookEndpoint.objects.filter(enabled=True) if event in (e.events or [])]


def _deliver(notification: Notification, endpoints, *, source_key: str, incident: Incident | None = None) -> None:
    """One delivery row per endpoint (once per cause), sent after commit."""
    created = []
    for endpoint in endpoints:
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    endpoint=endpoint,
                    incident=incident,
                    event=notification.event,
                    source_key=source_key,
                    payload=payload_for(endpoint, notification),
                    retry_until=timezone.now() + RETRY_WINDOW,
                )
            created.append(delivery.pk)
        except IntegrityError:
            continue  # already announced to this endpoint (a task ran twice)
    if created:
        from incidents.tasks import deliver_webhook

        # When the broker does not answer, the rows stay due and the webhook sweep sends them.
        transaction.on_commit(lambda: broker.publish_each(deliver_webhook, created, what="webhook delivery"))


def notify_report_received(report) -> None:
    """A member of the public reported a problem: every endpoint subscribed to report.received hears
    it, with a link to the triage list. Neither the reporter's name nor e-mail leaves the portal."""
    about = f" about {report.service.name}" if report.service else ""
    first_line = report.description.strip().splitlines()[0][:200] if report.description.strip() else ""
    url = portal_base_url() + reverse("incidents:reports") + "?status=new"
    notify(
        REPORT_RECEIVED,
        text=f"Problem report {report.reference}{about}: {first_line}",
        data={
            "report": {
                "id": report.pk,
                "reference": report.reference,
                "service": report.service.slug if report.service else None,
                "description": report.description,
                "url": url,
            },
        },
        url=url,
        reference=report.reference,
        source_key=f"report:{report.pk}",
    )


def payload_for(endpoint: WebhookEndpoint, notification: Notification) -> dict:
    """The body `endpoint` gets, written by its format; generic JSON when that format is no longer
    registered (its module was removed while endpoints still name it)."""
    try:
        fmt = get_format(endpoint.format)
    except KeyError:
        logger.warning("webhook endpoint %s names unknown format %r; sending generic JSON", endpoint, endpoint.format)
        fmt = get_format("json")
    try:
        return fmt.render(notification)
    except Exception:  # a bug in one format must not lose the notification (nor roll back the change)
        logger.exception("webhook format %r failed for %s; sending generic JSON", fmt.name, notification.event)
        return get_format("json").render(notification)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is reported as a failed attempt, not followed with the signed body


_opener = urllib.request.build_opener(_NoRedirects)


def send(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """One POST, signed at the time of this attempt. Returns (status code, error); error is "" on a 2xx answer."""
    endpoint = delivery.endpoint
    if not endpoint.url.lower().startswith(("http://", "https://")):
        return None, f"Not an http(s) URL: {endpoint.url}"
    body = delivery.body()
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "OpsPortal-Webhook/1",
            "X-OpsPortal-Event": delivery.event,
            "X-OpsPortal-Delivery": str(delivery.pk),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: endpoint.sign(body, timestamp),
        },
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        return exc.code, f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"
