"""Publishing on the status page: a public title and message apart from the internal ones, a
preview before anything is published, a suggestion when customers may notice an unpublished
incident, and 90 days of history per public service."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Incident
from tests.factories import IncidentFactory, ServiceFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
INTERNAL = "5xx rate 4.2% on cosmetica-api (>1%)"


@pytest.fixture
def shop(db):
    return ServiceFactory(name="Online shop", slug="shop", public=True)


@pytest.fixture
def alert_incident(shop, responder):
    return IncidentFactory(title=INTERNAL, severity="SEV2", services=[shop], summary="lb-3 upstream timeouts")


@pytest.fixture
def staff(client, responder):
    client.force_login(responder)
    return client


def test_publishing_never_shows_the_internal_title(client, responder, alert_incident):
    alert_incident.set_public(by=responder, public=True)
    body = client.get("/status/").content.decode()
    assert "Problems with Online shop" in body
    assert "cosmetica-api" not in body and "lb-3" not in body


def test_the_public_title_and_message_are_what_customers_read(staff, client, alert_incident):
    response = staff.post(
        f"/incidents/{alert_incident.pk}/public/",
        {"public": "on", "public_title": "Checkout errors", "public_message": "Some payments fail; retry works."},
    )
    assert response.status_code == 302
    alert_incident.refresh_from_db()
    assert alert_incident.public and alert_incident.title == INTERNAL
    body = client.get("/status/").content.decode()
    assert "Checkout errors" in body and "Some payments fail; retry works." in body and "cosmetica" not in body
    event = alert_incident.events.order_by("-id").first()
    assert event.body.startswith("Published on the public status page as **Checkout errors**")


def test_the_preview_shows_the_public_card_and_publishes_nothing(staff, alert_incident):
    response = staff.post(
        f"/incidents/{alert_incident.pk}/public/preview/",
        {"public": "on", "public_title": "Checkout errors", "public_message": "Payments may fail."},
        **HX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h2>Checkout errors</h2>" in html and "Payments may fail." in html and "Partial outage" not in html
    assert "Investigating" in html and 'form="publish-form"' in html and INTERNAL not in html
    alert_incident.refresh_from_db()
    assert not alert_incident.public and alert_incident.public_title == ""


def test_a_too_long_public_title_is_a_400_naming_the_field(staff, api, alert_incident):
    preview = staff.post(f"/incidents/{alert_incident.pk}/public/preview/", {"public_title": "x" * 201}, **HX)
    assert preview.status_code == 400 and b"public_title" in preview.content
    response = api.post(
        f"/api/incidents/{alert_incident.pk}/publish/", {"public": True, "public_title": "x" * 201}, format="json"
    )
    assert response.status_code == 400 and "public_title" in response.json()
    assert not Incident.objects.get(pk=alert_incident.pk).public


def test_the_api_publishes_with_a_public_title(api, alert_incident):
    response = api.post(
        f"/api/incidents/{alert_incident.pk}/publish/",
        {"public": True, "public_title": "Checkout errors", "public_message": "Retry works."},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["public_title"], response.json()["public_message"]) == ("Checkout errors", "Retry works.")
    again = api.post(
        f"/api/incidents/{alert_incident.pk}/publish/", {"public": True, "public_title": "Checkout slow"}, format="json"
    )
    assert again.status_code == 200 and again.json()["public_title"] == "Checkout slow"
    same = api.post(
        f"/api/incidents/{alert_incident.pk}/publish/", {"public": True, "public_title": "Checkout slow"}, format="json"
    )
    assert same.status_code == 409


def test_an_unpublished_sev2_on_a_public_service_is_suggested_for_publishing(staff, alert_incident, responder):
    page = staff.get(f"/incidents/{alert_incident.pk}/").content.decode()
    assert 'data-testid="publish-suggestion"' in page and "Online shop" in page
    alert_incident.set_public(by=responder, public=True)
    assert 'data-testid="publish-suggestion"' not in staff.get(f"/incidents/{alert_incident.pk}/").content.decode()


@pytest.mark.parametrize(("severity", "public_service"), [("SEV3", True), ("SEV1", False)])
def test_no_suggestion_for_minor_or_internal_incidents(staff, severity, public_service):
    service = ServiceFactory(name="Billing", slug="billing", public=public_service)
    incident = IncidentFactory(title="x", severity=severity, services=[service])
    assert "publish-suggestion" not in staff.get(f"/incidents/{incident.pk}/").content.decode()


def test_ninety_days_of_history_per_public_service(client, responder, shop):
    old = IncidentFactory(title="old", severity="SEV1", services=[shop])
    old.set_public(by=responder, public=True)
    old.transition_to("resolved", by=responder)
    ten_days_ago = timezone.now() - timedelta(days=10)
    Incident.objects.filter(pk=old.pk).update(
        started_at=ten_days_ago, detected_at=ten_days_ago, resolved_at=ten_days_ago
    )
    ancient = IncidentFactory(title="ancient", severity="SEV1", services=[shop])
    ancient.set_public(by=responder, public=True)
    ancient.transition_to("resolved", by=responder)
    long_ago = timezone.now() - timedelta(days=120)
    Incident.objects.filter(pk=ancient.pk).update(started_at=long_ago, detected_at=long_ago, resolved_at=long_ago)
    IncidentFactory(title="unpublished", severity="SEV1", services=[shop])
    body = client.get("/status/").content.decode()
    history = body[body.index('data-testid="history-shop"') :]
    history = history[: history.index("</ol>")]
    assert history.count('<li class="day') == 90
    assert history.count("state-major_outage") == 1
    day = timezone.localdate(ten_days_ago).isoformat()
    assert f'title="{day}: Major outage"' in history
    assert "1 day with incidents" in body
