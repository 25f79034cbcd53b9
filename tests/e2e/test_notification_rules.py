"""A person adds, corrects and deletes their own notification rule in the browser."""

import pytest
from playwright.sync_api import expect

from incidents.models import NotificationRule
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_adding_a_personal_webhook_rule_from_the_top_bar(new_page, login):
    alice = UserFactory(username="alice", email="alice@example.com", role="responder")
    page = new_page()
    login(page, "alice")
    page.get_by_test_id("my-notification-rules").click()
    expect(page.get_by_role("heading", name="Notification rules of alice")).to_be_visible()
    expect(page.get_by_test_id("no-rules")).to_have_text("No rules: e-mail at once.")

    add = page.locator("#add-rule")
    add.get_by_label("Channel").select_option("webhook")
    add.get_by_label("Webhook URL").fill("ftp://chat.example/hooks/alice")
    add.get_by_label("Delay (minutes)").fill("2")
    add.get_by_role("button", name="Add rule").click()
    expect(page.locator("#add-rule .error")).to_have_text("The webhook URL must be a full http:// or https:// address.")
    assert not NotificationRule.objects.exists()

    add.get_by_label("Webhook URL").fill("https://chat.example/hooks/alice")
    add.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_have_text("Saved: personal webhook after 2 min.")
    rule = page.get_by_test_id("rule")
    expect(rule).to_have_count(1)
    expect(rule.get_by_role("heading")).to_have_text("Personal webhook after 2 min")
    expect(rule.get_by_label("Webhook URL")).to_have_value("https://chat.example/hooks/alice")
    [stored] = NotificationRule.objects.filter(user=alice).select_related("endpoint")
    assert (stored.channel, stored.delay_minutes, stored.endpoint.url) == (
        "webhook",
        2,
        "https://chat.example/hooks/alice",
    )

    # The browser refuses a delay past a day before sending it (the server does too: test_notification_rules.py).
    delay = rule.get_by_label("Delay (minutes)")
    delay.fill("5000")
    rule.get_by_role("button", name="Save").click()
    assert delay.evaluate("el => el.validity.rangeOverflow") is True
    delay.fill("3")
    rule.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved: personal webhook after 3 min.")
    page.get_by_test_id("rule").get_by_role("button", name="Delete rule 1").click()
    expect(page.get_by_role("status")).to_have_text("Deleted: personal webhook after 3 min.")
    expect(page.get_by_test_id("no-rules")).to_be_visible()
    assert not NotificationRule.objects.exists()
