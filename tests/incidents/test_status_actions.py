"""Status actions: verbs, the next lifecycle step as the primary action, and Close only from
resolved (or with a reason, which still stamps the resolution and opens the review) — the same
rule through the model, the portal, the API and the admin."""

import re

import pytest

from incidents.choices import Status, next_step
from incidents.models import PostIncidentReview

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser(client, responder):
    client.force_login(responder)
    return client


def buttons(html: str) -> list[tuple[str, bool]]:
    """(label, primary) of the status action buttons, in page order."""
    found = re.findall(
        r'<button type="button" class="button( primary)?" data-status-action="[a-z]+"[^>]*>([^<]+)</button>', html
    )
    return [(label, bool(primary)) for primary, label in found]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("triggered", "acknowledged"),
        ("acknowledged", "investigating"),
        ("investigating", "mitigated"),
        ("mitigated", "resolved"),
        ("resolved", "closed"),
        ("closed", None),
    ],
)
def test_the_next_step_follows_the_lifecycle(status, expected):
    assert next_step(status) == expected


def test_a_triggered_incident_offers_acknowledge_as_the_primary_verb(browser, incident):
    html = browser.get(f"/incidents/{incident.pk}/").content.decode()
    assert buttons(html) == [
        ("Acknowledge", True),
        ("Start investigating", False),
        ("Mitigate", False),
        ("Resolve", False),
    ]
    assert "Close without resolving" in html
    # Resolve asks first; the status actions are not a form, so Enter in the note box sends nothing.
    assert re.search(r'data-status-action="resolved"[^>]*hx-confirm="Resolve INC-\d+\?', html.replace("\n", " "))
    actions = html[html.index('class="transitions"') : html.index("</div>", html.index('class="transitions"'))]
    assert "<form" not in actions


def test_a_resolved_incident_offers_close_first_and_reopen(browser, incident, responder):
    incident.transition_to("resolved", by=responder)
    html = browser.get(f"/incidents/{incident.pk}/").content.decode()
    assert buttons(html) == [("Close", True), ("Reopen", False)]
    assert "Close without resolving" not in html
    assert re.search(r'data-status-action="closed"[^>]*hx-confirm="Close INC-\d+\?', html.replace("\n", " "))


def test_closing_from_acknowledged_without_a_reason_is_refused_everywhere(browser, api, incident, responder):
    incident.transition_to("acknowledged", by=responder)
    page = browser.post(f"/incidents/{incident.pk}/transition/", {"to": "closed"}, **HX)
    assert page.status_code == 400 and b"note is required" in page.content
    response = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "closed"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "note" and "note is required" in response.json()["detail"]
    incident.refresh_from_db()
    assert incident.status == "acknowledged" and incident.closed_at is None and incident.resolved_at is None
    assert not PostIncidentReview.objects.exists()
    assert incident.events.filter(kind="status_change").count() == 2  # declared, acknowledged


def test_closing_with_a_reason_stamps_the_resolution_and_opens_the_review(browser, incident, responder):
    incident.transition_to("acknowledged", by=responder)
    page = browser.post(f"/incidents/{incident.pk}/transition/", {"to": "closed", "note": "Duplicate of INC-7"}, **HX)
    assert page.status_code == 200 and 'data-testid="status">Closed' in page.content.decode()
    incident.refresh_from_db()
    assert incident.status == Status.CLOSED
    assert incident.resolved_at == incident.closed_at is not None
    assert PostIncidentReview.objects.filter(incident=incident).exists()
    last = incident.events.filter(kind="status_change").order_by("-id").first()
    assert last.body == "Closed without resolving: **acknowledged** → **closed**\n\nDuplicate of INC-7"


def test_a_blank_reason_is_no_reason(api, incident):
    response = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "closed", "note": "   "}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "note"


def test_closing_a_resolved_incident_needs_no_reason(api, incident, responder):
    incident.transition_to("resolved", by=responder)
    response = api.post(f"/api/incidents/{incident.pk}/transition/", {"to": "closed"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "closed"


def test_admin_actions_use_the_same_rule(client, admin_user, incident, responder):
    client.force_login(admin_user)
    other = type(incident).declare(by=responder, title="Disk full")
    other.transition_to("resolved", by=responder)
    response = client.post(
        "/admin/incidents/incident/",
        {"action": "close", "_selected_action": [incident.pk, other.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert f"{incident.reference}: note is required" in text and "1 incidents moved to closed" in text
    incident.refresh_from_db()
    other.refresh_from_db()
    assert incident.status == "triggered" and other.status == "closed"


def test_the_header_of_a_published_review_does_not_count_down(browser, incident, responder):
    from django.utils import timezone

    incident.transition_to("resolved", by=responder)
    review = incident.review
    type(review).objects.filter(pk=review.pk).update(state="published", published_at=timezone.now())
    header = browser.get(f"/incidents/{incident.pk}/header/").content.decode()
    assert "(on time)" in header and "data-countdown" not in header
