"""An admin tests an integration from its page: "Send a test alert" goes through the real intake
and a real worker, the [TEST] incident appears in the delivery log, and it resolves itself."""

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

from incidents.models import Incident, Integration
from opsportal.celery import app as celery_app
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():
    celery_app.conf.task_always_eager = False
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


def test_send_a_test_alert_from_the_integration_page(new_page, login, worker, settings):
    settings.TEST_ALERT_RESOLVE_AFTER_SECONDS = 3
    UserFactory(username="alice", role="admin")
    Integration.create(name="prod-alertmanager", kind="alertmanager")

    page = new_page()
    login(page, "alice")
    page.goto("/ops/integrations/")
    page.get_by_role("link", name="prod-alertmanager").click()
    expect(page.get_by_test_id("last-received")).to_have_text("Nothing received yet")

    page.get_by_role("button", name="Send a test alert").click()
    expect(page.locator(".flash")).to_contain_text("Test alert sent")
    # The worker applies the delivery; the log refreshes itself and links the test incident.
    log = page.locator("#deliveries")
    link = log.get_by_role("link", name="INC-", exact=False).first
    expect(link).to_be_visible(timeout=20_000)
    expect(log).to_contain_text("Test")
    expect(page.get_by_test_id("last-received")).to_contain_text("Last received")
    expect(page.get_by_test_id("last-payload")).to_contain_text('"opsportal_test": "true"')
    # The scheduled resolution goes through the intake too: a second accepted delivery, resolved.
    expect(log.locator('tr[data-outcome="accepted"]')).to_have_count(2, timeout=20_000)
    expect(log.locator(".badge.status-resolved").first).to_be_visible(timeout=20_000)

    link.click()
    incident = Incident.objects.get()
    expect(page.locator("h1")).to_have_text("[TEST] Test alert from integration prod-alertmanager")
    expect(page.get_by_test_id("test-badge")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("Resolved")
    expect(page.locator("body")).to_contain_text("nobody is paged")
    assert incident.is_test and incident.status == "resolved"
