"""An on-call engineer runs a runbook from an incident in a real browser, with a real Celery worker;
a second responder approves the dangerous step."""

import pytest
from playwright.sync_api import expect

from incidents.models import TimelineEvent
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, ServiceFactory, UserFactory
from tests.runbooks.conftest import auto, celery_worker, http_service, make_runbook, manual, worker_thread  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_a_runbook_from_an_incident_with_an_approval(new_page, login, celery_worker, http_service):  # noqa: F811
    alice = UserFactory(username="alice", role="responder")
    UserFactory(username="bob", role="responder")
    service = ServiceFactory(name="Checkout API", slug="checkout-api", base_url=http_service)
    make_runbook(
        "High 5xx on checkout",
        steps=[
            auto("http_check", {"path": "/health"}, title="API health"),
            manual("Look at the error dashboard"),
            manual("Restart gunicorn", command="sudo systemctl restart gunicorn", safety="dangerous"),
            auto("host_check", {"check": "memory", "warn_percent": 100, "critical_percent": 100}, title="Memory"),
        ],
        services=[service],
        alert_names=["APIHigh5xxRate"],
    )
    incident = IncidentFactory(title="APIHigh5xxRate: checkout failing", services=[service], created_by=alice)

    page = new_page()
    login(page, "alice")
    page.goto(f"/incidents/{incident.pk}/")
    card = page.locator("#runbooks-card")
    expect(card).to_contain_text("High 5xx on checkout")
    card.get_by_role("button", name="Run").click()
    page.wait_for_url("**/runbooks/runs/*/")
    run = RunbookRun.objects.get()

    # The worker runs step 1 while the page polls; then the manual step waits for alice.
    first = page.locator("[data-step-run]").nth(0)
    expect(first.get_by_test_id("step-state")).to_have_text("Succeeded", timeout=20_000)
    expect(first).to_contain_text("HTTP 200 in")
    second = page.locator("[data-step-run]").nth(1)
    second.locator("input[name=note]").fill("Error rate back to 0.1 %")
    second.get_by_role("button", name="Done").click()
    expect(second.get_by_test_id("step-state")).to_have_text("Succeeded")
    third = page.locator("[data-step-run]").nth(2)
    expect(third).to_contain_text("someone other than you (you started the run) has to approve it")
    expect(third.get_by_role("button", name="Approve")).to_have_count(0)

    # Bob approves in his own browser; the restart is then done by hand and ticked.
    bob_page = new_page()
    login(bob_page, "bob")
    bob_page.goto(run.get_absolute_url())
    bob_step = bob_page.locator("[data-step-run]").nth(2)
    bob_step.locator("input[name=note]").fill("Pool exhausted, restart approved")
    bob_step.get_by_role("button", name="Approve").click()
    expect(bob_step).to_contain_text("approved by bob")
    bob_step.get_by_role("button", name="Done").click()

    # Alice's page follows along without a reload until the run has succeeded.
    expect(page.get_by_test_id("run-state")).to_have_text("Succeeded", timeout=20_000)
    expect(page.locator("[data-step-run]").nth(3)).to_contain_text("Memory")
    run.refresh_from_db()
    assert run.state == "succeeded" and run.step_runs.get(order=3).approved_by.username == "bob"
    bodies = list(TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True))
    assert any("approved by bob: Pool exhausted" in b for b in bodies) and bodies[-1].endswith("4 succeeded.")
    page.goto(f"/incidents/{incident.pk}/")
    expect(page.locator("#timeline")).to_contain_text("Restart gunicorn")
