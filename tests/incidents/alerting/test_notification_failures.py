"""A page is never lost to formatting, and a notification given up on is seen: on the incident's
timeline and in notifications_failed_total."""

from smtplib import SMTPServerDisconnected

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.utils import timezone

from incidents.metrics import notifications_failed_total
from incidents.models import EscalationContact, Page, WebhookDelivery, WebhookEndpoint
from incidents.models.notifications import RETRY_WINDOW
from incidents.notifications.formats.email import single_line
from incidents.tasks import EMAIL_MAX_RETRIES, deliver_webhook, send_notification_email, send_page
from tests.factories import IncidentFactory, UserFactory
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


@pytest.fixture
def oncall(db):
    person = UserFactory(username="oncall", email="oncall@example.com", role="responder")
    EscalationContact.objects.create(level=1, user=person)
    return person


def failed(channel: str) -> float:
    return notifications_failed_total.labels(channel=channel)._value.get()


def failures_on_timeline(incident) -> list[str]:
    return [b for b in incident.events.filter(kind="communication").values_list("body", flat=True)]


def test_an_alert_summary_with_newlines_still_pages_with_a_one_line_subject(
    post_alerts, service, oncall, django_capture_on_commit_callbacks
):
    summary = "Checkout 5xx above 5%\r\nBcc: everyone@example.com\n\tsee dashboard\u2028now"
    with django_capture_on_commit_callbacks(execute=True):
        response = post_alerts(alertmanager(alert(summary=summary, severity="critical")))
    assert response.status_code == 202
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["oncall@example.com"]
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject.endswith("Checkout 5xx above 5% Bcc: everyone@example.com see dashboard now")
    assert message.message()["Bcc"] is None  # the newline did not become a header
    assert "Checkout 5xx above 5%" in message.body


def test_subjects_are_capped_on_one_line():
    subject = single_line("word\n" * 100)
    assert len(subject) == 180 and subject.endswith("…") and "\n" not in subject


def test_a_mail_server_down_past_every_retry_is_on_the_timeline_and_counted(
    oncall, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr("incidents.alerting.paging.send_mail", refuse)
    before = failed("email")
    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(title="Checkout down", severity="SEV1")
    page = Page.objects.get(incident=incident)
    assert page.state == "pending" and page.attempts == 1  # the mail server may come back: tried again later
    assert failed("email") == before and failures_on_timeline(incident) == []
    past = timezone.now() - RETRY_WINDOW  # the retry window has run out: the next try is the last
    Page.objects.filter(pk=page.pk).update(created_at=past, due_at=past)
    send_page(page.pk)
    assert Page.objects.get(pk=page.pk).state == "failed"
    assert failed("email") == before + 1
    [entry] = failures_on_timeline(incident)
    assert entry.startswith(f"Notification failed: the email for incident.paged (page {page.pk} at L1, 2 attempt(s))")
    assert "SMTPServerDisconnected" in entry and "oncall@example.com" not in entry


def test_a_message_that_cannot_be_built_is_not_retried_but_reported(
    oncall, monkeypatch, django_capture_on_commit_callbacks
):
    def unbuildable(*args, **kwargs):
        raise ValueError("bad recipient")

    monkeypatch.setattr("incidents.alerting.paging.send_mail", unbuildable)
    before = failed("email")
    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(title="Checkout down", severity="SEV1")
    assert Page.objects.get(incident=incident).state == "failed"
    assert failed("email") == before + 1
    assert "ValueError: bad recipient" in failures_on_timeline(incident)[0]


def test_a_broken_format_still_sends_the_page(oncall, monkeypatch, django_capture_on_commit_callbacks):
    from incidents.notifications import registry

    def broken(notification):
        raise KeyError("oops")

    monkeypatch.setitem(registry._formats, "email", registry.Format("email", "E-mail", broken, False))
    with django_capture_on_commit_callbacks(execute=True):
        IncidentFactory(title="Checkout\ndown", severity="SEV1")
    assert len(mail.outbox) == 1 and "Checkout down" in mail.outbox[0].subject


def test_a_status_change_mail_server_down_past_every_retry_is_reported(
    oncall, monkeypatch, django_capture_on_commit_callbacks
):
    """The status-change e-mail to everyone paged goes through send_notification_email and its retries."""

    def refuse(*args, **kwargs):
        raise SMTPServerDisconnected("Connection unexpectedly closed")

    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(title="Checkout down", severity="SEV1")
    queued = []
    monkeypatch.setattr("incidents.tasks.send_mail", refuse)
    monkeypatch.setattr(
        "incidents.tasks.send_notification_email.apply_async",
        lambda args, kwargs=None, **options: queued.append((args, kwargs)),
    )
    before = failed("email")
    with django_capture_on_commit_callbacks(execute=True):
        incident.transition_to("acknowledged", by=oncall)
    [(args, kwargs)] = queued
    with pytest.raises(Retry):  # the mail server may come back: tried again later
        send_notification_email.apply(args, kwargs)
    assert failed("email") == before
    send_notification_email.apply(args, kwargs, retries=EMAIL_MAX_RETRIES)  # the last try
    assert failed("email") == before + 1
    [entry] = failures_on_timeline(incident)
    assert entry.startswith("Notification failed: the email for incident.status_changed (e-mail to 1 recipient(s))")
    assert "oncall@example.com" not in entry


def test_a_webhook_out_of_retries_is_on_the_timeline_and_counted(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    WebhookEndpoint.objects.create(name="chat", url="http://127.0.0.1:9/hook", events=["incident.created"])
    incident = IncidentFactory(title="Checkout down")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(retry_until=delivery.created_at)  # last attempt
    before = failed("webhook")
    deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    assert failed("webhook") == before + 1
    [entry] = failures_on_timeline(incident)
    assert entry.startswith("Notification failed: the webhook for incident.created (webhook chat, 1 attempt(s))")
