"""Outgoing webhooks against a real HTTP server on loopback: signing, retries with backoff, redelivery."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents.models import WebhookDelivery, WebhookEndpoint
from incidents.models.notifications import RETRY_WINDOW, backoff
from incidents.tasks import mark_overdue_reviews, retry_webhook_deliveries
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db
SECRET = "s3cret-for-signing"


def endpoint(url, **fields):
    return WebhookEndpoint.objects.create(name=fields.pop("name", "ops-hook"), url=url, secret=SECRET, **fields)


def declare(callbacks, **fields):
    with callbacks(execute=True):
        return IncidentFactory(title="Checkout 5xx", severity="SEV2", **fields)


def verify(secret: str, headers, body: bytes, *, now: float, tolerance: int = 300) -> bool:
    """What a receiver does (the README's example): a fresh timestamp, and a signature over `timestamp.body`."""
    headers = {k.lower(): v for k, v in headers.items()}  # header names are case-insensitive
    timestamp = headers.get("x-opsportal-timestamp", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False  # missing, or too old: a replay
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-opsportal-signature-256", ""))


def test_signed_json_delivery(receiver, django_capture_on_commit_callbacks):
    server = receiver([200])
    endpoint(server.url)
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False):
        incident = declare(django_capture_on_commit_callbacks)

    [request] = server.requests
    headers, body = request["headers"], request["body"]
    sent_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
    assert headers["X-Opsportal-Timestamp"] == str(int(sent_at))
    # The signature covers `timestamp.body` (it was the body alone, so a captured request could be replayed).
    signed = headers["X-Opsportal-Timestamp"].encode() + b"." + body
    assert (
        headers["X-Opsportal-Signature-256"]
        == "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    )
    assert verify(SECRET, headers, body, now=sent_at + 10)
    assert headers["X-Opsportal-Event"] == "incident.created"
    payload = json.loads(body)
    assert payload["event"] == "incident.created"
    assert payload["incident"]["reference"] == incident.reference
    assert payload["incident"]["url"].endswith(f"/incidents/{incident.pk}/")
    delivery = WebhookDelivery.objects.get()
    assert headers["X-Opsportal-Delivery"] == str(delivery.pk)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


def test_slack_format_is_a_text_message(receiver, django_capture_on_commit_callbacks, responder):
    server = receiver([200])
    endpoint(server.url, format="slack", events=["incident.status_changed"])
    incident = declare(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        incident.transition_to("acknowledged", by=responder)
    [request] = server.requests  # not subscribed to incident.created
    text = json.loads(request["body"])["text"]
    assert text.startswith(f"[SEV2] {incident.reference} triggered → acknowledged by alice")
    assert f"/incidents/{incident.pk}/|Open {incident.reference}>" in text


def test_failure_then_success_retries_with_backoff(receiver, django_capture_on_commit_callbacks):
    server = receiver([500, 503, 200])
    endpoint(server.url)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        declare(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error.startswith("HTTP 500")
    assert delivery.next_retry_at == start + timedelta(seconds=30)

    with time_machine.travel(start + timedelta(seconds=20), tick=False):
        assert retry_webhook_deliveries() == 0  # not due yet
    with time_machine.travel(start + timedelta(seconds=31), tick=False):
        assert retry_webhook_deliveries() == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 2, 503)
    assert delivery.next_retry_at == start + timedelta(seconds=31 + 60)

    with time_machine.travel(start + timedelta(seconds=92), tick=False):
        retry_webhook_deliveries()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered",
        3,
        200,
        "",
    )
    assert len(server.requests) == 3
    assert len({r["body"] for r in server.requests}) == 1  # the same signed body every time


def test_gives_up_after_24_hours(receiver, django_capture_on_commit_callbacks):
    server = receiver([502])
    endpoint(server.url)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        declare(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    gaps = []
    while delivery.state == "pending":
        previous = delivery.last_attempt_at
        with time_machine.travel(delivery.next_retry_at, tick=False):
            retry_webhook_deliveries()
        delivery.refresh_from_db()
        gaps.append(delivery.last_attempt_at - previous)
    assert delivery.state == "failed" and delivery.next_retry_at is None
    assert gaps[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(gaps) == timedelta(hours=1)  # the interval is capped
    assert delivery.last_attempt_at - start <= RETRY_WINDOW
    assert delivery.last_attempt_at + backoff(delivery.attempts) - start > RETRY_WINDOW
    assert delivery.attempts == len(server.requests) == len(gaps) + 1


def test_unreachable_endpoint_is_recorded(django_capture_on_commit_callbacks):
    endpoint("http://127.0.0.1:18699/closed")
    declare(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "pending" and delivery.last_status_code is None
    assert "Connection refused" in delivery.last_error or "URLError" in delivery.last_error


def test_a_task_running_twice_announces_once(receiver, django_capture_on_commit_callbacks, responder):
    from incidents.alerting.notify import notify_status_changed

    server = receiver([200])
    endpoint(server.url, events=["incident.status_changed"])
    incident = declare(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        incident.transition_to("acknowledged", by=responder)
        event = incident.events.latest("id")
        notify_status_changed(incident, previous="triggered", status="acknowledged", by=responder, source_event=event)
    assert WebhookDelivery.objects.count() == 1 and len(server.requests) == 1


def test_redeliver_through_the_api(receiver, django_capture_on_commit_callbacks, api_for):
    server = receiver([200])
    endpoint(server.url)
    declare(django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for("admin").post("/api/ops/webhooks/redeliver", {"deliveryId": delivery.pk}, format="json")
    assert response.status_code == 202
    assert response.json()["state"] == "pending" and response.json()["redelivered_at"]  # queued; sent after commit
    assert len(server.requests) == 2
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.redelivered_by.username) == ("delivered", 2, "root")


def test_a_replayed_or_retimed_request_does_not_verify(receiver, django_capture_on_commit_callbacks):
    server = receiver([200])
    endpoint(server.url)
    with time_machine.travel(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), tick=False):
        declare(django_capture_on_commit_callbacks)
    [request] = server.requests
    headers, body = dict(request["headers"]), request["body"]
    sent_at = int(headers["X-Opsportal-Timestamp"])
    assert not verify(SECRET, headers, body, now=sent_at + 3600)  # replayed an hour later
    headers["X-Opsportal-Timestamp"] = str(sent_at + 3600)  # the replayer moves the timestamp on
    assert not verify(SECRET, headers, body, now=sent_at + 3600)
    assert not verify("another-secret", request["headers"], body, now=sent_at)


def test_every_attempt_is_signed_at_its_own_time(receiver, django_capture_on_commit_callbacks):
    server = receiver([500, 200])
    endpoint(server.url)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(t0, tick=False):
        declare(django_capture_on_commit_callbacks)
    with time_machine.travel(t0 + timedelta(minutes=5), tick=False):
        retry_webhook_deliveries()
    first, second = server.requests
    assert first["body"] == second["body"]
    assert int(second["headers"]["X-Opsportal-Timestamp"]) - int(first["headers"]["X-Opsportal-Timestamp"]) == 300
    assert verify(SECRET, second["headers"], second["body"], now=(t0 + timedelta(minutes=5)).timestamp())


@pytest.mark.parametrize(("role", "status"), [("anonymous", 403), ("viewer", 403), ("responder", 403), ("admin", 202)])
def test_redeliver_endpoint_for_every_role(api_for, role, status, monkeypatch, db):
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    endpoint("http://127.0.0.1:18699/x")
    incident = IncidentFactory()
    delivery = WebhookDelivery.objects.get(incident=incident)
    response = api_for(role).post("/api/ops/webhooks/redeliver", {"deliveryId": delivery.pk}, format="json")
    assert response.status_code == status
    delivery.refresh_from_db()
    assert (delivery.redelivered_at is not None) == (status == 202)


def test_redeliver_endpoint_refuses_bad_input(api_for, db):
    client = api_for("admin")
    assert client.post("/api/ops/webhooks/redeliver", {"deliveryId": 999}, format="json").status_code == 404
    bad = client.post("/api/ops/webhooks/redeliver", {"deliveryId": "x"}, format="json")
    assert bad.status_code == 400 and "deliveryId" in bad.json()
    assert client.post("/api/ops/webhooks/redeliver", {}, format="json").status_code == 400
    assert client.get("/api/ops/webhooks/redeliver").status_code == 405


def test_redeliver_endpoint_is_csrf_protected_for_sessions(admin_user, monkeypatch):
    from django.test import Client

    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    endpoint("http://127.0.0.1:18699/x")
    delivery = WebhookDelivery.objects.get(incident=IncidentFactory())
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    refused = browser.post("/api/ops/webhooks/redeliver", {"deliveryId": delivery.pk}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/ops/webhooks/")  # sets the CSRF cookie, as the portal page does
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(
        "/api/ops/webhooks/redeliver",
        {"deliveryId": delivery.pk},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert accepted.status_code == 202


def test_redeliver_to_a_disabled_endpoint_is_refused(api_for, db, monkeypatch):
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    hook = endpoint("http://127.0.0.1:18699/x")
    delivery = WebhookDelivery.objects.get(incident=IncidentFactory())
    hook.enabled = False
    hook.save()
    response = api_for("admin").post("/api/ops/webhooks/redeliver", {"deliveryId": delivery.pk}, format="json")
    assert response.status_code == 400 and "disabled" in response.json()["detail"]


def test_redeliver_from_the_portal_and_the_admin(
    client, admin_user, responder, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda args, *rest, **kw: sent.append(*args))
    endpoint("http://127.0.0.1:18699/x")
    delivery = WebhookDelivery.objects.get(incident=IncidentFactory())

    client.force_login(responder)
    assert client.post(f"/ops/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/ops/webhooks/")
    assert page.status_code == 200 and b"incident.created" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        row = client.post(f"/ops/webhooks/deliveries/{delivery.pk}/redeliver/", headers={"HX-Request": "true"})
    assert row.status_code == 200 and f'id="delivery-{delivery.pk}"'.encode() in row.content
    with django_capture_on_commit_callbacks(execute=True):
        admin = client.post(
            "/admin/incidents/webhookdelivery/",
            {"action": "redeliver", "_selected_action": [delivery.pk]},
            follow=True,
        )
    assert admin.status_code == 200 and b"1 deliveries queued again" in admin.content
    assert sent == [delivery.pk, delivery.pk]


def test_overdue_review_is_announced_once(receiver, django_capture_on_commit_callbacks, responder):
    server = receiver([200])
    endpoint(server.url, events=["review.overdue"])
    incident = IncidentFactory(title="Checkout 5xx", commander=responder)
    incident.transition_to("resolved", by=responder)
    review = incident.review
    with (
        time_machine.travel(review.due_at + timedelta(minutes=5), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert mark_overdue_reviews() == 1
        assert mark_overdue_reviews() == 0
    [request] = server.requests
    payload = json.loads(request["body"])
    assert request["headers"]["X-Opsportal-Event"] == "review.overdue"
    assert payload["text"].startswith(f"Post-incident review of {incident.reference} is overdue")
    assert payload["review"]["id"] == review.pk


def test_a_problem_report_is_announced_without_the_reporters_details(
    receiver, django_capture_on_commit_callbacks, client
):
    from incidents.models import ProblemReport
    from tests.factories import ServiceFactory

    json_hook = receiver([200])
    slack_hook = receiver([200])
    endpoint(json_hook.url, events=["report.received"])
    endpoint(slack_hook.url, name="chat", format="slack", events=["report.received"])
    endpoint("http://127.0.0.1:9/unused", name="incidents-only", events=["incident.created"])
    ServiceFactory(name="Checkout", slug="checkout", public=True)
    form = {
        "name": "Jane Customer",
        "email": "jane@example.com",
        "service": "checkout",
        "description": "The Pay button spins forever since 10:00.\nTried two browsers.",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/public/reports/", form, content_type="application/json")
    assert response.status_code == 201, response.content
    report = ProblemReport.objects.get()
    [request] = json_hook.requests
    assert request["headers"]["X-Opsportal-Event"] == "report.received"
    payload = json.loads(request["body"])
    assert (
        payload["text"]
        == f"Problem report {report.reference} about Checkout: The Pay button spins forever since 10:00."
    )
    assert payload["report"]["url"].endswith("/incidents/reports/?status=new")
    assert payload["report"]["service"] == "checkout" and "Tried two browsers." in payload["report"]["description"]
    assert b"jane" not in request["body"].lower()  # neither the name nor the e-mail leaves the portal
    [chat] = slack_hook.requests
    assert f"|Open {report.reference}>" in json.loads(chat["body"])["text"]
    assert WebhookDelivery.objects.filter(event="report.received", incident=None).count() == 2


def test_the_admin_ticks_the_events_of_an_endpoint(admin_client):
    hook = endpoint("http://127.0.0.1:9/hook", events=["incident.created"])
    page = admin_client.get(f"/admin/incidents/webhookendpoint/{hook.pk}/change/").content.decode()
    assert 'type="checkbox" name="events" value="report.received"' in page
    assert 'type="checkbox" name="events" value="ops.approval_requested"' in page
    form = {"name": hook.name, "url": hook.url, "format": "json", "secret": SECRET, "enabled": "on"}
    form["events"] = ["incident.created", "report.received"]
    response = admin_client.post(f"/admin/incidents/webhookendpoint/{hook.pk}/change/", form)
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.events == ["incident.created", "report.received"]
