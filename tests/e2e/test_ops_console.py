"""The ops console in Chromium: an admin turns maintenance on and off, asks for a dangerous action
(removing a failed task) from its row, and a second admin approves it from the approvals card; the
first admin cannot approve their own request, and the audit trail names both."""

import pytest
from playwright.sync_api import expect

from ops import approvals
from ops.models import ActionRequest, FailedTask, MaintenanceSwitch
from tests.e2e.test_status_reports import watch_csp
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_maintenance_and_a_two_person_removal_from_the_console(new_page, login):
    UserFactory(username="root", role="admin", is_staff=True)
    UserFactory(username="second", role="admin", is_staff=True)
    UserFactory(username="alice", role="responder")
    task = FailedTask.objects.create(
        task_id="e2e-1", name="incidents.tasks.deliver_webhook", queue="celery", exception="ValueError: poison"
    )

    first = new_page()
    violations = watch_csp(first)
    login(first, "root")
    first.get_by_role("link", name="Ops", exact=True).click()
    expect(first.locator("h1")).to_have_text("Ops console")
    expect(first.locator("#ops-queues")).not_to_contain_text("Asking the workers")  # the card loaded
    expect(first.locator("#ops-cache dl")).to_contain_text("Backend")
    expect(first.locator("#ops-health")).to_contain_text("It has not run yet")

    # Maintenance on: a responder gets the 503 page, the console still works; then off again.
    first.once("dialog", lambda dialog: dialog.accept())
    first.get_by_role("button", name="Turn maintenance on").click()
    expect(first.get_by_test_id("maintenance-state")).to_contain_text("On")
    responder = new_page()
    responder.goto("/accounts/login/")
    assert responder.goto("/incidents/").status == 503
    expect(responder.locator("body")).to_contain_text("maintenance")
    first.get_by_role("button", name="Turn maintenance off").click()
    expect(first.get_by_test_id("maintenance-state")).to_contain_text("Off")
    assert not MaintenanceSwitch.current().enabled

    # Removing a failed task only asks; the approvals card shows the request at once.
    row = first.locator(f"#failed-{task.pk}")
    expect(row).to_contain_text("ValueError: poison")
    first.once("dialog", lambda dialog: dialog.accept("poison message, retries loop"))
    row.get_by_role("button", name="Remove…").click()
    expect(first.locator("#ops-failed .flash")).to_contain_text("waits for another admin's approval")
    asked = ActionRequest.objects.get()
    pending = first.locator(f"#request-{asked.pk}")
    expect(pending).to_contain_text("poison message, retries loop")
    expect(pending).to_contain_text("Dry run: would remove failed tasks")
    expect(pending.get_by_role("button", name="Approve")).to_have_count(0)
    expect(pending.get_by_role("button", name="Withdraw")).to_be_visible()
    task.refresh_from_db()
    assert task.removed_at is None

    # A second admin approves it.
    second = new_page()
    violations += watch_csp(second)
    login(second, "second")
    second.goto("/ops/")
    row = second.locator(f"#request-{asked.pk}")
    row.locator("input[name=note]").fill("checked the payload")
    second.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Approve").click()
    expect(second.locator("#ops-requests .flash")).to_contain_text(f"Request #{asked.pk} approved")
    expect(second.get_by_test_id("pending-requests")).to_contain_text("Nothing is waiting for approval.")

    approvals.execute(asked.pk)  # what the worker does with the queued task
    second.reload()
    expect(second.get_by_test_id("decided-requests")).to_contain_text("Removed 1 failed task(s)")
    expect(second.get_by_test_id("decided-requests")).to_contain_text("second: checked the payload")
    audit = second.locator("#ops-audit tbody tr").first
    expect(audit).to_contain_text("remove_task")
    expect(audit).to_contain_text("approved by second")
    expect(second.locator(f"#failed-{task.pk}")).to_have_count(0)
    assert violations == []
