"""A responder's whole path through an incident, in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from incidents.models import Incident, TimelineEvent
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_declare_edit_timeline_acknowledge_and_resolve(new_page, login):
    UserFactory(username="alice", role="responder")
    ServiceFactory(name="Checkout API", slug="checkout-api")
    page = new_page()
    login(page, "alice")

    # Declare
    page.get_by_role("link", name="Declare incident").first.click()
    page.fill("input[name=title]", "Checkout returns 502")
    page.select_option("select[name=severity]", "SEV2")
    page.get_by_label("Checkout API").check()
    page.click("button:has-text('Declare')")
    expect(page.locator("h1")).to_have_text("Checkout returns 502")
    expect(page.get_by_test_id("status")).to_have_text("Triggered")
    incident = Incident.objects.get()
    url_after_declare = page.url

    # Add an entry (no page reload: the URL and a marker on window survive)
    page.evaluate("window.__marker = 'same-page'")
    page.fill("#timeline textarea[name=body]", "Upstream **nginx** returns 502 for /checkout")
    page.click("button:has-text('Add entry')")
    entry = page.locator("article.event", has_text="Upstream nginx returns 502")
    expect(entry).to_be_visible()
    expect(entry.locator("strong")).to_have_text("nginx")
    event = TimelineEvent.objects.get(body__contains="Upstream")

    # Edit it in place
    entry.get_by_role("button", name="Edit").click()
    editor = page.locator(f"#event-{event.pk} textarea[name=body]")
    editor.fill("Upstream nginx returns 502 for /checkout and /cart")
    page.locator(f"#event-{event.pk}").get_by_role("button", name="Save").click()
    expect(page.locator(f"#event-{event.pk}")).to_contain_text("and /cart")
    expect(page.locator(f"#event-{event.pk}")).to_contain_text("edited")

    # Delete, then undo
    page.locator(f"#event-{event.pk}").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#event-{event.pk}")).to_contain_text("Entry deleted")
    page.locator(f"#event-{event.pk}").get_by_role("button", name="Undo").click()
    expect(page.locator(f"#event-{event.pk}")).to_contain_text("and /cart")
    event.refresh_from_db()
    assert event.deleted_at is None and event.version == 4
    assert [r.action for r in event.revisions.order_by("version")] == ["edit", "delete", "restore"]

    # Acknowledge and resolve from the status actions
    page.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(page.get_by_test_id("status")).to_have_text("Acknowledged")
    page.fill("input[name=note]", "Rolled back the nginx config")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Resolve", exact=True).click()
    expect(page.get_by_test_id("status")).to_have_text("Resolved")
    expect(page.locator("#timeline")).to_contain_text("Rolled back the nginx config")

    assert page.url == url_after_declare
    assert page.evaluate("window.__marker") == "same-page"
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.acknowledged_at and incident.resolved_at


def test_times_are_shown_in_the_browsers_time_zone(new_page, login):
    UserFactory(username="alice", role="responder")
    incident = Incident.declare(by=None, title="Clock check")
    page = new_page(timezone_id="Asia/Tokyo")
    login(page, "alice")
    page.goto(f"/incidents/{incident.pk}/")
    page.wait_for_load_state("networkidle")
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("#incident-header")).to_contain_text(re.compile(r"\d{2}:\d{2} JST"))


def test_enter_in_the_note_box_does_not_change_the_status_and_close_needs_resolving(new_page, login):
    UserFactory(username="alice", role="responder")
    incident = Incident.declare(by=None, title="Queue backlog")
    incident.transition_to("acknowledged", by=None)
    page = new_page()
    login(page, "alice")
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("[data-status-action].primary")).to_have_text("Start investigating")

    page.fill("input[name=note]", "Checking the consumers")
    page.press("input[name=note]", "Enter")
    page.fill("#timeline textarea[name=body]", "Consumers are at 0%")
    page.press("#timeline textarea[name=body]", "Enter")
    page.wait_for_load_state("networkidle")
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    expect(page.get_by_test_id("status")).to_have_text("Acknowledged")

    # There is no one-click Close before resolving; the reasoned close refuses an empty reason.
    expect(page.get_by_role("button", name="Close", exact=True)).to_have_count(0)
    page.get_by_text("Close without resolving…").click()

    def accept(dialog):
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Close without resolving").click()
    page.wait_for_load_state("networkidle")
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    # If the browser refused the empty reason before any confirmation showed, the handler is still
    # waiting and would accept the next dialog: the Resolve below must meet only its own.
    page.remove_listener("dialog", accept)

    # Declining the confirmation changes nothing either.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Resolve", exact=True).click()
    page.wait_for_load_state("networkidle")
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
