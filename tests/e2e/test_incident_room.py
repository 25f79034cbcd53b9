"""Two people in one incident, at desktop and phone sizes: each sees the other's notes and status
changes without reloading, and a refresh never eats what one of them is typing."""

import pytest
from playwright.sync_api import expect

from incidents.models import Incident
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def room(browser, live_server, login):
    contexts = []

    def open_as(username: str, size: str):
        context = browser.new_context(base_url=live_server.url, timezone_id="Europe/Paris", viewport=SIZES[size])
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        login(page, username)
        return page

    yield open_as
    for context in contexts:
        context.close()


@pytest.mark.parametrize("size", SIZES)
def test_two_people_see_each_others_notes_and_status_changes(room, size):
    UserFactory(username="alice", role="responder")
    UserFactory(username="bob", role="responder")
    incident = Incident.declare(by=None, title="Checkout returns 502")
    alice, bob = room("alice", size), room("bob", size)
    for page in (alice, bob):
        page.goto(f"/incidents/{incident.pk}/")
        page.evaluate("window.__marker = 'no reload'")

    # Bob is halfway through a note and a status note when Alice writes and acknowledges.
    bob.fill("#timeline textarea[name=body]", "Half-written: nginx upstream")
    bob.fill("#transition-note", "my status note")
    alice.fill("#timeline textarea[name=body]", "Rolling back deploy 812")
    alice.click("button:has-text('Add entry')")
    expect(bob.locator("#timeline-entries")).to_contain_text("Rolling back deploy 812")
    alice.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(bob.get_by_test_id("status")).to_have_text("Acknowledged")
    expect(bob.locator("[data-status-action].primary")).to_have_text("Start investigating")
    expect(bob.locator("#timeline-entries")).to_contain_text("triggered → acknowledged")
    assert bob.input_value("#timeline textarea[name=body]") == "Half-written: nginx upstream"
    assert bob.input_value("#transition-note") == "my status note"

    # Bob's note reaches Alice the same way.
    bob.click("button:has-text('Add entry')")
    expect(alice.locator("#timeline-entries")).to_contain_text("Half-written: nginx upstream")
    assert alice.evaluate("window.__marker") == bob.evaluate("window.__marker") == "no reload"


def test_an_open_edit_form_survives_a_colleagues_change(room):
    UserFactory(username="alice", role="responder")
    UserFactory(username="bob", role="responder")
    incident = Incident.declare(by=None, title="Queue backlog")
    note = incident.events.model.add_note(incident, by=None, body="Consumers at 0%")
    alice, bob = room("alice", "desktop"), room("bob", "desktop")
    for page in (alice, bob):
        page.goto(f"/incidents/{incident.pk}/")
    bob.locator(f"#event-{note.pk}").get_by_role("button", name="Edit").click()
    bob.fill(f"#event-{note.pk} textarea[name=body]", "Consumers at 0%, restarting")

    alice.fill("#timeline textarea[name=body]", "Scaled consumers to 6")
    alice.click("button:has-text('Add entry')")
    expect(bob.locator("#timeline-entries")).to_contain_text("Scaled consumers to 6")
    assert bob.input_value(f"#event-{note.pk} textarea[name=body]") == "Consumers at 0%, restarting"
    bob.locator(f"#event-{note.pk}").get_by_role("button", name="Save").click()
    expect(alice.locator(f"#event-{note.pk}")).to_contain_text("restarting")
