"""Paging: who an escalation level reaches, the pages written for them, sending them, and the
signed one-time acknowledge links they carry.

A level's contacts resolve to people: a schedule contact to whoever the schedule puts on call when
the level fires, a user contact to that user. Each person is paged by their notification rules
(none: e-mail at once). An e-mail contact gets a page without an acknowledge link (the link is
bound to an account). When nothing at a level can be reached, an `unrouted` page, a timeline
warning and `pages_unrouted_total` say so.

An acknowledge link is `signing.dumps({page, user, incident, action})`: it names one page (so one
person and one incident), one action, expires after PAGE_LINK_MAX_AGE_SECONDS and works once
(the page's `link_used_at`). GET shows a confirmation page; only POST acts, so mail scanners that
fetch links acknowledge nothing.
"""

import logging
from datetime import datetime, timedelta
from smtplib import SMTPException

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from incidents import metrics
from incidents.choices import EventKind, Status
from incidents.models import (
    EscalationContact,
    Incident,
    NotificationRule,
    Page,
    PageChannel,
    PageState,
    Schedule,
    TimelineEvent,
    WebhookDelivery,
)
from incidents.models.alerts import portal_base_url
from incidents.models.notifications import RETRY_WINDOW, backoff
from incidents.notifications.registry import Notification, register_event
from incidents.oncall import on_call_at, with_rotations
from opsportal.errors import Conflict, DomainError, NotAllowed

logger = logging.getLogger(__name__)
PAGED = register_event("incident.paged", "Paged (a person's webhook rule)")
LINK_SALT = "incidents.page-link"
ACKNOWLEDGE = "ack"


class LinkExpired(DomainError):
    """An acknowledge link past its lifetime (HTTP 400)."""


class LinkInvalid(DomainError):
    """A link whose signature does not check out (HTTP 400)."""


class LinkUsed(Conflict):
    """An acknowledge link already used (HTTP 409)."""


# --- who a level reaches ----------------------------------------------------------------------


def page_level(
    incident: Incident, level: int, *, source_key: str, text: str, now: datetime | None = None
) -> list[Page]:
    """Write the pages of `level` for `incident`, inside the caller's transaction; the ones due now
    are sent after commit. Writes the nobody-to-page warning when the level reaches no one."""
    now = now or timezone.now()
    contacts = list(
        EscalationContact.objects.filter(level=level).select_related("user", "endpoint", "schedule").order_by("id")
    )
    schedules = {
        s.pk: s
        for s in with_rotations(
            Schedule.objects.filter(pk__in=[c.schedule_id for c in contacts if c.schedule_id]),
            now,
            now + timedelta(microseconds=1),
        )
    }
    pages: list[Page] = []
    reasons: list[str] = []
    reached = False
    seen_users: set[int] = set()
    for contact in contacts:
        made, reason = _page_contact(incident, level, source_key, text, contact, schedules, seen_users, now)
        reached = reached or reason is None
        pages += made
        if reason:
            reasons.append(reason)
    if not reached:
        _unrouted(incident, level, source_key, text, reason="; ".join(reasons) or f"no escalation contacts at L{level}")
    due = [p.pk for p in pages if p.pk and p.due_at <= now]
    if due:
        from incidents.tasks import send_page

        transaction.on_commit(lambda: [send_page.delay(pk) for pk in due])
    return pages


def _page_contact(
    incident, level, source_key, text, contact, schedules: dict, seen_users: set[int], now: datetime
) -> tuple[list[Page], str | None]:
    """The pages one contact of a level makes, and why it reaches nobody (None: it reaches someone)."""
    if contact.endpoint_id:  # the escalation's webhook delivery is written by notify._notify
        return [], None if contact.endpoint.enabled else f"webhook {contact.endpoint.name} is disabled"
    if contact.email:
        via = f"e-mail {contact.email}"
        return [_page(incident, level, source_key, text, via=via, address=contact.email, due_at=now)], None
    if contact.schedule_id:
        schedule = schedules[contact.schedule_id]
        shift = on_call_at(schedule, now)
        if shift is None:
            return [], f"schedule {schedule.name} has no one on call"
        user, via = shift.user, f"schedule {schedule.name}"
    else:
        user, via = contact.user, f"user {contact.user.get_username()}"
    if user.pk in seen_users:
        return [], None
    if not user.is_active:
        return [], f"{user.get_username()} ({via}) is inactive"
    made = _pages_for(incident, level, source_key, text, user=user, via=via, now=now)
    if not made:
        return [], f"{user.get_username()} ({via}) has no e-mail address or notification rule to use"
    seen_users.add(user.pk)
    return made, None


def _pages_for(
    incident: Incident, level: int, source_key: str, text: str, *, user, via: str, now: datetime
) -> list[Page]:
    rules = list(NotificationRule.objects.filter(user=user).select_related("endpoint"))
    pages = []
    if not rules:
        if user.email:
            pages.append(_page(incident, level, source_key, text, via=via, user=user, due_at=now))
        return pages
    for rule in rules:
        if rule.channel == PageChannel.EMAIL and not user.email:
            continue
        if rule.channel == PageChannel.WEBHOOK and not rule.endpoint.enabled:
            continue
        due_at = now + timedelta(minutes=rule.delay_minutes)
        pages.append(
            _page(incident, level, source_key, text, via=via, user=user, channel=rule.channel, rule=rule, due_at=due_at)
        )
    return pages


def _page(
    incident, level, source_key, text, *, via, due_at, user=None, address="", channel=PageChannel.EMAIL, rule=None
):
    page = Page(
        incident=incident,
        level=level,
        source_key=source_key,
        text=text[:300],
        via=via,
        user=user,
        address=address,
        channel=channel,
        rule=rule,
        due_at=due_at,
    )
    try:
        with transaction.atomic():
            page.save()
    except IntegrityError:
        page.pk = None  # this cause already paged this person (a task ran twice)
    return page


def _unrouted(incident: Incident, level: int, source_key: str, text: str, *, reason: str) -> None:
    page = Page(
        incident=incident,
        level=level,
        source_key=source_key,
        text=text[:300],
        via="",
        channel=PageChannel.NONE,
        state=PageState.UNROUTED,
        error=reason,
    )
    try:
        with transaction.atomic():
            page.save()
    except IntegrityError:
        return  # already warned for this cause
    TimelineEvent.record(incident, kind=EventKind.ESCALATION, body=f"Nobody to page at L{level}: {reason}.")
    metrics.pages_unrouted_total.labels(level=f"L{level}").inc()


# --- sending ----------------------------------------------------------------------------------


def claim(page_id: int, now: datetime) -> Page | None:
    """Take a due page for one attempt; cancel a delayed one whose incident was acknowledged."""
    with transaction.atomic():
        page = (
            Page.objects.select_for_update(of=("self",))
            .select_related("incident", "user", "rule__endpoint")
            .filter(pk=page_id)
            .first()
        )
        if page is None or page.state != PageState.PENDING or page.due_at > now:
            return None
        if page.rule_id and page.rule.delay_minutes and page.incident.status != Status.TRIGGERED:
            page.state = PageState.CANCELLED
            page.save(update_fields=["state"])
            return None
        page.due_at = now + timedelta(minutes=2)  # a lease: the sweep leaves it alone while this one sends
        page.save(update_fields=["due_at"])
    return page


def send(page: Page, now: datetime) -> None:
    """One attempt; failures are retried with the webhooks' backoff for their retry window."""
    from incidents.alerting.notify import email_for, incident_data, incident_url

    text = page.text
    notification = Notification(
        event=PAGED,
        text=text,
        data={
            "event": PAGED,
            "text": text,
            "occurred_at": now.isoformat(),
            "incident": incident_data(page.incident),
            "level": page.level,
            "acknowledge_url": acknowledge_url(page),
        },
        url=incident_url(page.incident),
        reference=page.incident.reference,
        summary=page.incident.summary,
    )
    if page.channel == PageChannel.WEBHOOK:
        _send_webhook(page, notification, now)
        return
    mail = email_for(notification)  # a broken format still leaves a plain, one-line-subject e-mail
    body = mail["body"]
    link = acknowledge_url(page)
    if link:
        body += f"\nAcknowledge (one click, then confirm): {link}\nOpen the incident: {notification.url}\n"
    error, final = "", False
    try:
        send_mail(mail["subject"], body, None, [page.user.email if page.user_id else page.address])
    except (SMTPException, OSError) as exc:  # the mail server may come back: retried with backoff
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        logger.exception("page %s could not be sent", page.pk)
        error, final = f"{type(exc).__name__}: {exc}", True
    _record(page, now, error, final=final)


def _send_webhook(page: Page, notification: Notification, now: datetime) -> None:
    from incidents.alerting.notify import payload_for
    from incidents.tasks import deliver_webhook

    endpoint = page.rule.endpoint
    with transaction.atomic():
        delivery, _ = WebhookDelivery.objects.get_or_create(
            endpoint=endpoint,
            event=PAGED,
            source_key=f"page:{page.pk}",
            defaults={
                "incident": page.incident,
                "payload": payload_for(endpoint, notification),
                "retry_until": now + RETRY_WINDOW,
            },
        )
        Page.objects.filter(pk=page.pk).update(
            delivery=delivery, state=PageState.SENT, sent_at=now, attempts=1, due_at=now
        )
        transaction.on_commit(lambda: deliver_webhook.delay(delivery.pk))


def _record(page: Page, now: datetime, error: str, *, final: bool = False) -> None:
    """One attempt's outcome; a page given up on is counted and written on the incident's timeline
    (notify.record_failed), so the responders know who was not told."""
    with transaction.atomic():
        locked = Page.objects.select_for_update().get(pk=page.pk)
        locked.attempts += 1
        locked.error = error[:2000]
        if not error:
            locked.state, locked.sent_at = PageState.SENT, now
        elif final or now + backoff(locked.attempts) > locked.created_at + RETRY_WINDOW:
            locked.state = PageState.FAILED
        else:
            locked.due_at = now + backoff(locked.attempts)
        locked.save()
    metrics.pages_total.labels(channel=page.channel, result="failed" if error else "sent").inc()
    if error:
        logger.warning("page %s to %s failed: %s", page.pk, page.recipient, error)
    if locked.state == PageState.FAILED:
        from incidents.alerting.notify import record_failed

        record_failed(
            page.channel,
            incident_id=page.incident_id,
            event=PAGED,
            what=f"page {page.pk} at L{page.level}, {locked.attempts} attempt(s)",
            error=error,
        )


# --- acknowledge links ------------------------------------------------------------------------


def acknowledge_url(page: Page) -> str:
    """The one-click link of a page to a person ('' for an address without an account)."""
    if not page.user_id:
        return ""
    token = signing.dumps(
        {"p": page.pk, "u": page.user_id, "i": page.incident_id, "a": ACKNOWLEDGE}, salt=LINK_SALT, compress=True
    )
    return portal_base_url() + reverse("incidents:page_link", args=[token])


def page_for_link(token: str, *, signed_in=None) -> Page:
    """The page a link names, if its signature holds and it has not expired; refuses a person
    signed in as someone else than the one it was sent to."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=settings.PAGE_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise LinkExpired("This acknowledge link has expired; open the incident instead.") from exc
    except signing.BadSignature as exc:
        raise LinkInvalid("This is not a valid acknowledge link.") from exc
    if not isinstance(data, dict) or data.get("a") != ACKNOWLEDGE:
        raise LinkInvalid("This is not a valid acknowledge link.")
    page = (
        Page.objects.select_related("incident", "user")
        .filter(pk=data.get("p"), user_id=data.get("u"), incident_id=data.get("i"))
        .first()
    )
    if page is None or page.user is None or not page.user.is_active:
        raise LinkInvalid("This acknowledge link no longer names a page.")
    if signed_in is not None and signed_in.is_authenticated and signed_in.pk != page.user_id:
        raise NotAllowed(
            f"This link was sent to {page.user.get_username()}; you are signed in as {signed_in.get_username()}."
        )
    return page


def acknowledge_by_link(token: str, *, signed_in=None) -> tuple[Page, bool]:
    """Use the link once: acknowledge the incident as the person paged. Returns (page, acted);
    acted is False when the incident had already left 'triggered'."""
    page = page_for_link(token, signed_in=signed_in)
    with transaction.atomic():
        locked = Page.objects.select_for_update(of=("self",)).select_related("incident", "user").get(pk=page.pk)
        if locked.link_used_at is not None:
            raise LinkUsed(f"This link was already used at {timezone.localtime(locked.link_used_at):%H:%M %Z}.")
        locked.link_used_at = timezone.now()
        locked.save(update_fields=["link_used_at"])
        incident = Incident.objects.select_for_update().get(pk=locked.incident_id)
        if incident.status != Status.TRIGGERED:
            return locked, False
        incident.transition_to(
            Status.ACKNOWLEDGED,
            by=locked.user,
            note=f"Acknowledged from the L{locked.level} page ({locked.channel} link).",
        )
    return locked, True
