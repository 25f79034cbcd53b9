"""The public status page: public services and incidents, public updates only, no sign-in."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Incident, TimelineEvent
from opsportal.errors import InvalidTransition
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def services(db):
    return {
        "checkout": ServiceFactory(name="Checkout", slug="checkout", public=True),
        "search": ServiceFactory(name="Search", slug="search", public=True),
        "db": ServiceFactory(name="Primary DB", slug="primary-db", public=False),
    }


def published(responder, **fields) -> Incident:
    """Published under a public title equal to the (customer-friendly) internal one of these tests."""
    incident = IncidentFactory(created_by=responder, **fields)
    incident.set_public(by=responder, public=True, public_title=incident.title)
    return incident


def test_anyone_sees_all_operational_without_signing_in(client, services):
    response = client.get("/status/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "All systems operational" in body and "Checkout" in body and "Search" in body
    assert "Primary DB" not in body
    assert 'name="email"' in body and 'name="website"' in body


def test_service_state_comes_from_open_public_incidents(client, responder, services):
    published(responder, title="Payments failing", severity="SEV1", services=[services["checkout"]])
    slow = published(responder, title="Search slow", severity="SEV3", services=[services["search"]])
    IncidentFactory(title="Secret DB failover", severity="SEV1", services=[services["search"], services["db"]])
    body = client.get("/status/").content.decode()
    assert 'data-testid="state-checkout">Major outage' in body
    assert 'data-testid="state-search">Degraded performance' in body
    assert "Payments failing" in body and "Search slow" in body
    assert "Secret DB failover" not in body
    slow.transition_to("mitigated", by=responder)
    assert 'data-testid="state-search">Recovering' in client.get("/status/").content.decode()


def test_only_communication_entries_are_public_updates(client, responder, services):
    incident = published(responder, title="Checkout errors", services=[services["checkout"]])
    TimelineEvent.add_note(incident, by=responder, body="We are rolling back the release.", kind="communication")
    TimelineEvent.add_note(incident, by=responder, body="root cause: bad nginx config on lb-3", kind="note")
    deleted = TimelineEvent.add_note(incident, by=responder, body="Draft update, ignore", kind="communication")
    deleted.soft_delete(by=responder)
    body = client.get("/status/").content.decode()
    assert "We are rolling back the release." in body
    assert "nginx" not in body and "Draft update" not in body
    assert "Published on the public status page" not in body  # system entries stay internal
    assert responder.username not in body


def test_resolved_incidents_stay_listed_for_a_week(client, responder, services):
    incident = published(responder, title="Old blip", services=[services["search"]])
    incident.transition_to("resolved", by=responder)
    body = client.get("/status/").content.decode()
    assert "Resolved in the last 7 days" in body and "Old blip" in body and "All systems operational" in body
    Incident.objects.filter(pk=incident.pk).update(resolved_at=timezone.now() - timedelta(days=8))
    assert "Old blip" not in client.get("/status/").content.decode()


def test_queries_do_not_grow_with_incidents(client, responder, services, django_assert_max_num_queries):
    def load():
        with django_assert_max_num_queries(8) as captured:
            assert client.get("/status/").status_code == 200
        return len(captured.captured_queries)

    published(responder, services=[services["checkout"]])
    few = load()
    for n in range(10):
        incident = published(responder, title=f"i{n}", services=list(services.values()))
        TimelineEvent.add_note(incident, by=responder, body=f"update {n}", kind="communication")
    assert load() == few


def test_set_public_is_a_verb_with_a_timeline_entry(responder, services):
    incident = IncidentFactory(created_by=responder)
    incident.set_public(by=responder, public=True)
    assert incident.public
    assert incident.events.filter(kind="action", body__startswith="Published on the public status page").exists()
    with pytest.raises(InvalidTransition, match="already on"):
        incident.set_public(by=responder, public=True)
    incident.set_public(by=responder, public=False)
    assert not incident.public


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 403), ("viewer", 403), ("responder", 200), ("admin", 200)]
)
def test_publish_over_the_api_by_role(api_for, incident, role, expected):
    response = api_for(role).post(f"/api/incidents/{incident.pk}/publish/", {"public": True}, format="json")
    assert response.status_code == expected
    incident.refresh_from_db()
    assert incident.public == (expected == 200)
    if expected == 200:
        assert response.json()["public"] is True
        again = api_for(role).post(f"/api/incidents/{incident.pk}/publish/", {"public": True}, format="json")
        assert again.status_code == 409


@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 302), ("viewer", 403), ("responder", 302), ("admin", 302)]
)
def test_publish_from_the_portal_by_role(client, user_for, incident, role, expected):
    if user_for(role):
        client.force_login(user_for(role))
    response = client.post(f"/incidents/{incident.pk}/public/", {"public": "on"})
    assert response.status_code == expected
    incident.refresh_from_db()
    assert incident.public == (role in {"responder", "admin"})
