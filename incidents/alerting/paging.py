"""Paging: who an escalation level reaches, the pages written for them, sending them, and the
signed one-time acknowledge links they carry.

A level's contacts resolve to people: a schedule contact to whoever the schedule puts on call when
the level fires, a user contact to that user. Each person is paged by their notification rules
(none: e-mail at once). An e-mail contact gets a page without an acknowledge link (the link is
bound to an account). When nothing at a level can be reached, an `unrouted` page, a timeline
warning and `pages_unrouted_total` say so.

An approval page (`page_approvers`) asks the people who may approve a dangerous runbook step or
ops request to decide it: on-call approvers (admins first), else every approver; never the person
who asked. It carries the approval's link, no acknowledge link. The app that asks registers a
check (`register_approval`) so that a delayed approval page is cancelled once the approval is
decided.

An acknowledge link is `signing.dumps({page, user, incident, action})`: it names one page (so one
person and one incident), one action, expires after PAGE_LINK_MAX_AGE_SECONDS and works once
(the page's `link_used_at`). GET shows a confirmation page; only POST acts, so mail scanners that
fetch links acknowledge nothing.
"""

import logging
from collections.abc import Callable, Iterable
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
    PagePurpose,
    PageState,
    Schedule,
    TimelineEvent,
    WebhookDelivery,
)
from incidents.models.alerts import portal_base_url
from incidents.models.notifications import RETRY_WINDOW, backoff
from incidents.notifications.formats.email import single_line
from incidents.notifications.registry import Notification, register_event
from incidents.oncall import on_call_at, on_call_now, with_rotations
from opsportal import broker
from opsportal.errors import Conflict, DomainError, NotAllowed
from opsportal.roles import users_who_respond

logger = logging.getLogger(__name__)
PAGED = register_event("incident.paged", "Paged (a person's webhook rule)")
APPROVAL_PAGED = register_event("approval.paged", "Paged for an approval (a person's webhook rule)")
TEST_PAGED = register_event("page.test", "Test page (a person's webhook rule)")
APPROVAL_PAGE_MAX = 10  # when nobody who may approve is on call: every approver, admins first, at most this many
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
    _send_due(pages, now)
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
    incident: Incident | None, level: int | None, source_key: str, text: str, *, user, via: str, now: datetime, **kind
) -> list[Page]:
    """A person's pages by their notification rules (none: e-mail at once); `kind` is an approval
    page's purpose and link."""
    rules = list(NotificationRule.objects.filter(user=user).select_related("endpoint"))
    pages = []
    if not rules:
        if user.email:
            pages.append(_page(incident, level, source_key, text, via=via, user=user, due_at=now, **kind))
        return pages
    for rule in rules:
        if rule.channel == PageChannel.EMAIL and not user.email:
            continue
        if rule.channel == PageChannel.WEBHOOK and not rule.endpoint.enabled:
            continue
        due_at = now + timedelta(minutes=rule.delay_minutes)
        pages.append(
            _page(
                incident,
                level,
                source_key,
                text,
                via=via,
                user=user,
                channel=rule.channel,
                rule=rule,
                due_at=due_at,
                **kind,
            )
        )
    return pages


def _page(
    incident,
    level,
    source_key,
    text,
    *,
    via,
    due_at,
    user=None,
    address="",
    channel=PageChannel.EMAIL,
    rule=None,
    purpose=PagePurpose.ESCALATION,
    link="",
):
    page = Page(
        incident=incident,
        purpose=purpose,
        link=link,
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


def _note_unrouted(source_key: str, text: str, reason: str, **fields) -> bool:
    """Records that nobody could be paged for `source_key`; False when that was recorded already."""
    page = Page(
        source_key=source_key,
        text=text[:300],
        via="",
        channel=PageChannel.NONE,
        state=PageState.UNROUTED,
        error=reason,
        **fields,
    )
    try:
        with transaction.atomic():
            page.save()
    except IntegrityError:
        return False
    return True


def _unrouted(incident: Incident, level: int, source_key: str, text: str, *, reason: str) -> None:
    if not _note_unrouted(source_key, text, reason, incident=incident, level=level):
        return  # already warned for this cause
    TimelineEvent.record(incident, kind=EventKind.ESCALATION, body=f"Nobody to page at L{level}: {reason}.")
    metrics.pages_unrouted_total.labels(level=f"L{level}").inc()


# --- approval pages ---------------------------------------------------------------------------

_approval_checks: dict[str, Callable[[int], bool]] = {}


def register_approval(prefix: str, is_waiting: Callable[[int], bool]) -> None:
    """An app that pages for approvals names its pages' source keys `<prefix>:<pk>` and tells,
    by pk, whether the approval still waits (a delayed page is cancelled when it no longer does)."""
    _approval_checks[prefix] = is_waiting


def _approval_waiting(source_key: str) -> bool:
    prefix, _, pk = source_key.partition(":")
    check = _approval_checks.get(prefix)
    return check is None or not pk.isdigit() or check(int(pk))


def approver_tiers(candidates: Iterable, *, requester=None, now: datetime | None = None) -> list[list[tuple]]:
    """Who to page for an approval, as tiers of (user, why): among `candidates` (the people allowed
    to approve) first everyone on call now in any schedule, then the others (at most
    APPROVAL_PAGE_MAX of them). Admins first in each tier, then by username. Never the requester."""
    now = now or timezone.now()
    people = [u for u in candidates if u.is_active and (requester is None or u.pk != requester.pk)]
    on_call: dict[int, str] = {}
    schedules = with_rotations(Schedule.objects.order_by("name"), now, now + timedelta(microseconds=1))
    for schedule, shift in on_call_now(schedules, now):
        if shift is not None:
            on_call.setdefault(shift.user.pk, f"on call: schedule {schedule.name}")
    admins = set(users_who_respond(admins_only=True).values_list("pk", flat=True))
    people.sort(key=lambda u: (u.pk not in admins, u.get_username()))
    return [
        [(u, on_call[u.pk]) for u in people if u.pk in on_call],
        [(u, "approver") for u in people if u.pk not in on_call][:APPROVAL_PAGE_MAX],
    ]


def page_approvers(
    candidates: Iterable, *, requester, what: str, text: str, link: str, source_key: str, incident=None
) -> list[Page]:
    """Page the people who may approve `what` (e.g. "step 3/5 Restart"), inside the caller's
    transaction; due pages go after commit. The on-call approvers are paged; when none of them can
    be reached, the other approvers. The incident's timeline (when there is one) says who was
    paged, or that nobody could be: then an unrouted page row, a warning in the log and
    `pages_unrouted_total{level="approval"}` say so too."""
    now = timezone.now()
    pages: list[Page] = []
    reached, missed = [], []
    for tier in approver_tiers(candidates, requester=requester, now=now):
        for user, why in tier:
            made = _pages_for(
                incident, None, source_key, text, user=user, via=why, now=now, purpose=PagePurpose.APPROVAL, link=link
            )
            (reached if made else missed).append(user.get_username())
            pages += made
        if reached:
            break
    if not reached:
        reason = "nobody other than the requester may approve it"
        if missed:
            reason = f"{', '.join(missed)} cannot be reached (no e-mail address or notification rule)"
        _unrouted_approval(incident, source_key, text, what=what, reason=reason)
    elif incident is not None:
        body = f"Paged {', '.join(reached)} for approval of {what}."
        TimelineEvent.record(incident, kind=EventKind.ESCALATION, body=body)
    _send_due(pages, now)
    return pages


def _unrouted_approval(incident, source_key: str, text: str, *, what: str, reason: str) -> None:
    logger.warning("nobody to page for approval of %s: %s", what, reason)
    if not _note_unrouted(source_key, text, reason, incident=incident, purpose=PagePurpose.APPROVAL):
        return  # already warned for this approval
    metrics.pages_unrouted_total.labels(level="approval").inc()
    if incident is not None:
        TimelineEvent.record(
            incident, kind=EventKind.ESCALATION, body=f"Nobody to page for approval of {what}: {reason}."
        )


def _send_due(pages: list[Page], now: datetime) -> None:
    """Queue the pages due now after commit, with the bounded publish (this runs in requests): when
    the broker does not answer, they stay pending and the escalation sweep queues them."""
    due = [p.pk for p in pages if p.pk and p.due_at <= now]
    if due:
        from incidents.tasks import send_page

        transaction.on_commit(lambda: broker.publish_each(send_page, due, what="page"))


# --- test pages -------------------------------------------------------------------------------


def page_test(user, *, link: str) -> list[Page]:
    """A test page to `user` by each of their rules at once, delays ignored (none: e-mail), so they
    see that every channel reaches them; at most one a minute. [] when nothing could be written."""
    now = timezone.now()
    text = f"Test page from Ops Portal for {user.get_username()}: this channel reaches you."
    with transaction.atomic():
        pages = _pages_for(
            None,
            None,
            f"test:{user.pk}:{now:%Y%m%d%H%M}",
            text,
            user=user,
            via="test",
            now=now,
            purpose=PagePurpose.TEST,
            link=link,
        )
        for page in pages:
            if page.pk and page.due_at > now:
                Page.objects.filter(pk=page.pk).update(due_at=now)
                page.due_at = now
        pages = [p for p in pages if p.pk]
        _send_due(pages, now)
    return pages


# --- sending ----------------------------------------------------------------------------------


def claim(page_id: int, now: datetime) -> Page | None:
    """Take a due page for one attempt; cancel a delayed one whose incident was acknowledged (or
    whose approval was decided) before it was due."""
    with transaction.atomic():
        page = (
            Page.objects.select_for_update(of=("self",))
            .select_related("incident", "user", "rule__endpoint")
            .filter(pk=page_id)
            .first()
        )
        if page is None or page.state != PageState.PENDING or page.due_at > now:
            return None
        if page.rule_id and page.rule.delay_minutes and not _still_wanted(page):
            page.state = PageState.CANCELLED
            page.save(update_fields=["state"])
            return None
        page.due_at = now + timedelta(minutes=2)  # a lease: the sweep leaves it alone while this one sends
        page.save(update_fields=["due_at"])
    return page


def _still_wanted(page: Page) -> bool:
    if page.purpose == PagePurpose.APPROVAL:
        return _approval_waiting(page.source_key)
    if page.purpose == PagePurpose.TEST:
        return True
    return page.incident.status == Status.TRIGGERED


def send(page: Page, now: datetime) -> None:
    """One attempt; failures are retried with the webhooks' backoff for their retry window."""
    notification = _notification(page, now)
    if page.channel == PageChannel.WEBHOOK:
        _send_webhook(page, notification, now)
        return
    error, final = "", False
    try:
        subject, body = _email(page, notification)
        send_mail(subject, body, None, [page.user.email if page.user_id else page.address])
    except (SMTPException, OSError) as exc:  # the mail server may come back: retried with backoff
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        logger.exception("page %s could not be sent", page.pk)
        error, final = f"{type(exc).__name__}: {exc}", True
    _record(page, now, error, final=final)


def _notification(page: Page, now: datetime) -> Notification:
    from incidents.alerting.notify import incident_data, incident_url

    incident = page.incident
    if page.purpose == PagePurpose.TEST:
        data = {"test": True, "rules_url": page.link}
        event, url, reference, summary = TEST_PAGED, page.link, "", ""
    elif page.purpose == PagePurpose.APPROVAL:
        data = {"approval_url": page.link, "incident": incident_data(incident) if incident else None}
        event, url, reference, summary = APPROVAL_PAGED, page.link, incident.reference if incident else "", ""
    else:
        data = {"incident": incident_data(incident), "level": page.level, "acknowledge_url": acknowledge_url(page)}
        event, url, reference, summary = PAGED, incident_url(incident), incident.reference, incident.summary
    data = {"event": event, "text": page.text, "occurred_at": now.isoformat(), **data}
    return Notification(event=event, text=page.text, data=data, url=url, reference=reference, summary=summary)


def _email(page: Page, notification: Notification) -> tuple[str, str]:
    """Subject and body: an escalation page in the e-mail format plus its acknowledge link (a page
    to a person; an address without an account gets the incident's link only); an approval page
    with the link to decide it and no acknowledge link."""
    from incidents.alerting.notify import email_for, incident_url

    if page.purpose == PagePurpose.TEST:
        return single_line(page.text), f"{page.text}\n\nYour notification rules: {page.link}\n"
    if page.purpose == PagePurpose.APPROVAL:
        body = f"{page.text}\n\nApprove or reject it here: {page.link}\n"
        if page.incident_id:
            body += f"Incident {page.incident.reference}: {incident_url(page.incident)}\n"
        return single_line(page.text), body
    mail = email_for(notification)  # a broken format still leaves a plain, one-line-subject e-mail
    body = mail["body"]
    link = acknowledge_url(page)
    if link:
        body += f"\nAcknowledge (one click, then confirm): {link}\nOpen the incident: {notification.url}\n"
    return mail["subject"], body


def _send_webhook(page: Page, notification: Notification, now: datetime) -> None:
    from incidents.alerting.notify import payload_for
    from incidents.tasks import deliver_webhook

    endpoint = page.rule.endpoint
    with transaction.atomic():
        delivery, _ = WebhookDelivery.objects.get_or_create(
            endpoint=endpoint,
            event=notification.event,
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
        transaction.on_commit(lambda: broker.publish_each(deliver_webhook, [delivery.pk], what="webhook delivery"))


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
            event={PagePurpose.APPROVAL: APPROVAL_PAGED, PagePurpose.TEST: TEST_PAGED}.get(page.purpose, PAGED),
            what=f"page {page.pk} {_which(page)}, {locked.attempts} attempt(s)",
            error=error,
        )


def _which(page: Page) -> str:
    """'at L1' for an escalation page, 'for approval' or 'for test page' otherwise."""
    if page.purpose == PagePurpose.ESCALATION:
        return f"at L{page.level}"
    return f"for {page.get_purpose_display().lower()}"


# --- acknowledge links ------------------------------------------------------------------------


def acknowledge_url(page: Page) -> str:
    """The one-click link of an escalation page to a person ('' for an address without an account,
    and for an approval page: it is decided where its link leads)."""
    if not page.user_id or page.purpose != PagePurpose.ESCALATION:
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
        .filter(pk=data.get("p"), user_id=data.get("u"), incident_id=data.get("i"), purpose=PagePurpose.ESCALATION)
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
