"""Filling a post-incident review in the browser, with a second person editing at the same time."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from incidents.models import PostIncidentReview
from tests.factories import IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_fill_review_with_two_action_items_see_a_conflict_and_publish(new_page, login):
    alice = UserFactory(username="alice", role="responder")
    UserFactory(username="bob", role="responder")
    incident = IncidentFactory(title="Checkout 502", commander=alice)
    incident.transition_to("resolved", by=alice)
    review = PostIncidentReview.objects.get()
    due = (timezone.localdate() + timedelta(days=7)).isoformat()

    page = new_page()
    login(page, "alice")
    page.goto(f"/reviews/{review.pk}/")
    expect(page.get_by_test_id("review-state")).to_have_text("Draft")
    expect(page.locator("#publish-missing")).to_contain_text("Summary is empty")

    page.fill("#field-summary", "Checkout returned 502 for 20 minutes.")
    expect(page.locator("#status-summary")).to_contain_text("Saved")
    page.fill("#field-impact", "All customers could not pay.")
    expect(page.locator("#status-impact")).to_contain_text("Saved")
    page.fill("#field-root_cause", "A typo in the nginx upstream block.")
    expect(page.locator("#status-root_cause")).to_contain_text("Saved")

    for index, (title, kind) in enumerate(
        (("Validate nginx config in CI", "test"), ("Alert on upstream 502s", "alert"))
    ):
        form = page.locator("form.add-item")
        form.locator("input[name=title]").fill(title)
        form.locator("select[name=kind]").select_option(kind)
        form.locator("select[name=owner]").select_option(label="alice")
        form.locator("input[name=due_date]").fill(due)
        form.get_by_role("button", name="Add action item").click()
        expect(page.locator("#action-items .item-edit input[name=title]").nth(index)).to_have_value(title)
    assert review.action_items.count() == 2
    expect(page.locator("#publish-missing")).to_contain_text("Everything needed is there")

    # Bob opens the same review and rewrites the summary.
    other = new_page()
    login(other, "bob")
    other.goto(f"/reviews/{review.pk}/")
    other.fill("#field-summary", "Checkout returned 502 for 22 minutes (bob).")
    expect(other.locator("#status-summary")).to_contain_text("Saved")

    # Alice, still on her page, edits the summary: her save is refused and Bob's text shown.
    page.fill("#field-summary", "Checkout returned 502 for about 20 minutes.")
    conflict = page.get_by_test_id("conflict")
    expect(conflict).to_be_visible()
    expect(conflict.locator(".their-text")).to_have_text("Checkout returned 502 for 22 minutes (bob).")
    expect(conflict.locator(".my-text")).to_have_text("Checkout returned 502 for about 20 minutes.")
    review.refresh_from_db()
    assert review.summary == "Checkout returned 502 for 22 minutes (bob)."
    # While in conflict her box does not autosave, even when she leaves it.
    page.locator("#field-impact").click()
    page.wait_for_timeout(1200)
    review.refresh_from_db()
    assert review.summary == "Checkout returned 502 for 22 minutes (bob)."
    conflict.get_by_role("button", name="Use their text").click()
    expect(page.locator("#field-summary")).to_have_value("Checkout returned 502 for 22 minutes (bob).")
    expect(page.get_by_test_id("conflict")).to_have_count(0)

    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_test_id("review-state")).to_have_text("Published")
    review.refresh_from_db()
    assert review.state == "published" and review.summary == "Checkout returned 502 for 22 minutes (bob)."
    assert review.root_cause == "A typo in the nginx upstream block."
