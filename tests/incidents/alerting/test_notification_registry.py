"""Notification formats and events are registries: a format is one module plus one registration
line, an event is registered by the app that owns it, and nothing unregistered gets in."""

import json

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction

from incidents.alerting.notify import notify
from incidents.models import WebhookDelivery, WebhookEndpoint
from incidents.notifications import registry
from incidents.notifications.registry import Notification, register_event, register_format
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db
ADD_URL = "/admin/incidents/webhookendpoint/add/"


@pytest.fixture
def fresh_registries(monkeypatch):
    """Registrations made by the test are forgotten after it."""
    monkeypatch.setattr(registry, "_formats", dict(registry._formats))
    monkeypatch.setattr(registry, "_events", dict(registry._events))


@pytest.fixture
def teams_format(fresh_registries):
    def render(notification: Notification) -> dict:
        return {"title": notification.text, "link": notification.url, "kind": notification.event}

    return register_format("teams", "Teams card", render)


def endpoint_form(url: str, **fields) -> dict:
    return {"name": "hook", "url": url, "format": "json", "secret": "s3cret", "enabled": "on", **fields}


def test_a_registered_format_is_offered_and_delivered_through(
    teams_format, admin_client, receiver, django_capture_on_commit_callbacks
):
    server = receiver([200])
    assert 'value="teams"' in admin_client.get(ADD_URL).content.decode()
    form = endpoint_form(server.url, format="teams", events=["incident.created"])
    assert admin_client.post(ADD_URL, form).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(title="Checkout 5xx", severity="SEV2")

    [request] = server.requests
    assert json.loads(request["body"]) == {
        "title": f"[SEV2] {incident.reference} opened: Checkout 5xx",
        "link": f"http://127.0.0.1:8000/incidents/{incident.pk}/",
        "kind": "incident.created",
    }
    assert WebhookDelivery.objects.get().state == "delivered"


def test_email_is_a_format_but_not_a_webhook_one(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    assert 'value="json"' in page and 'value="slack"' in page
    assert 'value="email"' not in page
    assert registry.get_format("email").webhook is False


def test_the_admin_refuses_an_unknown_event_or_format(admin_client):
    hook = WebhookEndpoint.objects.create(name="hook", url="http://127.0.0.1:9/hook", events=["incident.created"])
    change = f"/admin/incidents/webhookendpoint/{hook.pk}/change/"

    response = admin_client.post(change, endpoint_form(hook.url, events=["incident.created", "nope.event"]))
    assert response.status_code == 200  # the admin shows the form again, with the error on the field
    assert "Select a valid choice. nope.event is not one of the available choices." in response.content.decode()
    response = admin_client.post(change, endpoint_form(hook.url, format="teams", events=["incident.created"]))
    assert "Select a valid choice. teams is not one of the available choices." in response.content.decode()
    hook.refresh_from_db()
    assert (hook.format, hook.events) == ("json", ["incident.created"])


@pytest.mark.parametrize("events", [["incident.created", "nope.event"], "incident.created", [{"a": 1}]])
def test_an_endpoint_validates_its_events_against_the_registry(events):
    hook = WebhookEndpoint(name="hook", url="https://hooks.example.com/x", secret="s", events=events)
    with pytest.raises(ValidationError) as error:
        hook.full_clean()
    assert "events" in error.value.message_dict
    assert "ops.approval_requested" in error.value.message_dict["events"][0]  # names what is allowed


def test_an_endpoint_validates_its_format_against_the_registry(teams_format):
    hook = WebhookEndpoint(name="hook", url="https://hooks.example.com/x", secret="s", format="teams")
    hook.full_clean()
    hook.format = "pager"
    with pytest.raises(ValidationError) as error:
        hook.full_clean()
    assert list(error.value.message_dict) == ["format"]


def test_a_newly_registered_event_is_subscribable_and_delivered(fresh_registries, django_capture_on_commit_callbacks):
    event = register_event("deploy.finished", "Deploy finished")
    assert event in WebhookEndpoint().events  # a new endpoint hears every event by default
    hook = WebhookEndpoint.objects.create(name="hook", url="http://127.0.0.1:9/hook", events=[event])
    with time_machine.travel("2026-03-01T10:00:00+00:00", tick=False), transaction.atomic():
        notify(
            event,
            text="api v42 is out",
            data={"deploy": {"version": "v42"}},
            url="https://ci.example.com/42",
            reference="deploy 42",
            source_key="deploy:42",
        )
    delivery = WebhookDelivery.objects.get()
    assert (delivery.endpoint, delivery.event, delivery.incident) == (hook, event, None)
    assert delivery.body() == (
        b'{"deploy":{"version":"v42"},"event":"deploy.finished",'
        b'"occurred_at":"2026-03-01T10:00:00+00:00","text":"api v42 is out"}'
    )


def test_an_unregistered_event_cannot_be_sent():
    with pytest.raises(ValueError, match=r"Unknown notification event 'deploy\.finished'"):
        notify("deploy.finished", text="x", data={}, url="https://x", reference="x", source_key="k")


def test_registrations_that_would_clash_are_refused(fresh_registries):
    assert register_event("incident.created", "Incident created") == "incident.created"  # same again: no-op
    with pytest.raises(ValueError, match="already registered"):
        register_event("incident.created", "Something else")
    with pytest.raises(ValueError, match="longer than 32"):
        register_event("x" * 33, "Too long for WebhookDelivery.event")
    with pytest.raises(ValueError, match="already registered"):
        register_format("slack", "Another Slack", lambda notification: {})
    with pytest.raises(ValueError, match="longer than 8"):
        register_format("microsoft-teams", "Too long for WebhookEndpoint.format", lambda notification: {})


def test_incident_events_keep_their_generic_json_body(django_capture_on_commit_callbacks, responder):
    """The registries moved; what receivers get did not change."""
    WebhookEndpoint.objects.create(name="hook", url="http://127.0.0.1:9/hook", events=["incident.status_changed"])
    incident = IncidentFactory(title="Checkout 5xx", severity="SEV2")
    with time_machine.travel("2026-03-01T10:00:00+00:00", tick=False):
        incident.transition_to("acknowledged", by=responder)
    payload = WebhookDelivery.objects.get().payload
    assert {k: v for k, v in payload.items() if k != "incident"} == {
        "event": "incident.status_changed",
        "text": f"[SEV2] {incident.reference} triggered → acknowledged by alice: Checkout 5xx",
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "previous_status": "triggered",
        "status": "acknowledged",
        "by": "alice",
    }
    assert payload["incident"]["reference"] == incident.reference
    assert payload["incident"]["acknowledged_at"] == "2026-03-01T10:00:00+00:00"
