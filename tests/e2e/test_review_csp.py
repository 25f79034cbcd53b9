"""The review pages under the production Content-Security-Policy (DEBUG off: enforced, not
report-only; script-src 'self'): no inline handler is blocked, Enter in a review field saves the
value through htmx and never submits the form by GET (the text would end up in the URL and logs)."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from incidents.models import ActionItem, PostIncidentReview
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# Collects every CSP violation the page meets (Playwright's init script itself is not subject to the CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


@pytest.fixture
def review(db):
    alice = UserFactory(username="alice", role="responder")
    incident = IncidentFactory(title="Checkout 502", commander=alice)
    incident.transition_to("resolved", by=alice)
    review = PostIncidentReview.objects.get()
    ActionItem.objects.create(review=review, title="Validate nginx config", created_by=alice)
    return review


def open_page(new_page, login):
    assert not settings.DEBUG  # the production policy: enforced
    page = new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    login(page, "alice")
    return page


def test_the_policy_is_enforced_not_report_only(new_page, login, review):
    page = open_page(new_page, login)
    response = page.goto(f"/reviews/{review.pk}/")
    headers = response.all_headers()
    assert "content-security-policy-report-only" not in headers
    assert "script-src 'self'" in headers["content-security-policy"]


def test_enter_in_an_action_item_saves_it_and_never_submits_by_get(new_page, login, review):
    page = open_page(new_page, login)
    page.goto(f"/reviews/{review.pk}/")
    title = page.locator("#action-items form.item-edit input[name=title]").first
    title.fill("Validate nginx config in CI, secret-ish text")
    title.press("Enter")
    wait_for(
        lambda: ActionItem.objects.get().title == "Validate nginx config in CI, secret-ish text",
        message="the action item to be saved",
    )
    assert page.url.endswith(f"/reviews/{review.pk}/")  # no navigation: nothing in a query string
    assert "secret-ish" not in page.url
    expect(page.locator("#action-items form.item-edit input[name=title]").first).to_have_value(
        "Validate nginx config in CI, secret-ish text"
    )
    assert page.evaluate("window.__cspViolations") == []


def test_enter_on_the_customer_facing_choice_keeps_the_page_and_saves(new_page, login, review):
    page = open_page(new_page, login)
    page.goto(f"/reviews/{review.pk}/")
    page.locator("#field-customer_facing").focus()
    page.select_option("#field-customer_facing", "true")
    expect(page.locator("#status-customer_facing")).to_contain_text("Saved")
    page.locator("#field-customer_facing").press("Enter")
    wait_for(lambda: PostIncidentReview.objects.get().customer_facing is True, message="the review to be saved")
    assert page.url.endswith(f"/reviews/{review.pk}/") and "value=" not in page.url
    assert page.evaluate("window.__cspViolations") == []


def test_the_state_filter_applies_on_change_under_the_policy(new_page, login, review):
    page = open_page(new_page, login)
    page.goto("/reviews/")
    page.select_option("select[name=state]", "draft")
    page.wait_for_url("**/reviews/?state=draft")
    expect(page.locator("select[name=state]")).to_have_value("draft")
    assert page.evaluate("window.__cspViolations") == []
