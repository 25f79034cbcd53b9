"""A member of the public reports a problem on /status/; a responder turns it into an incident."""

import pytest
from playwright.sync_api import expect

from incidents.models import Incident, ProblemReport
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def watch_csp(page) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    return violations


def test_public_report_becomes_an_incident(new_page, login):
    UserFactory(username="alice", role="responder")
    ServiceFactory(name="Checkout", slug="checkout", public=True)

    # The public: no account, the status page, the form.
    public = new_page()
    violations = watch_csp(public)
    public.goto("/status/")
    expect(public.get_by_test_id("overall")).to_have_text("All systems operational")
    expect(public.locator("input[name=website]")).not_to_be_in_viewport()
    public.fill("input[name=name]", "Jane Customer")
    public.fill("input[name=email]", "jane@example.com")
    public.select_option("select[name=service]", label="Checkout")
    public.fill("textarea[name=description]", "The Pay button spins forever since 10:00.")
    public.click("button:has-text('Send report')")
    report = ProblemReport.objects.get()
    expect(public.locator(".flash")).to_contain_text(f"your report {report.reference} reached the on-call team")

    # A responder triages it.
    staff = new_page()
    violations += watch_csp(staff)
    login(staff, "alice")
    staff.get_by_role("link", name="Reports").click()
    row = staff.locator(f"#report-{report.pk}")
    expect(row).to_contain_text("The Pay button spins forever")
    row.locator("input[name=title]").fill("Checkout payments hang")
    row.locator("select[name=severity]").select_option("SEV2")
    row.get_by_role("button", name="Turn into incident").click()
    expect(staff.locator("h1")).to_have_text("Checkout payments hang")
    expect(staff.locator("#timeline")).to_contain_text(f"Problem report {report.reference} from the status page")
    incident = Incident.objects.get()
    report.refresh_from_db()
    assert report.status == "escalated" and report.incident == incident and incident.severity == "SEV2"

    # Published with a public update, the public sees it; internal notes stay internal.
    # A SEV2 on a public service: the page suggests publishing, the form is already open, and the
    # customer-facing text is previewed before it is published.
    expect(staff.get_by_test_id("publish-suggestion")).to_contain_text("Checkout")
    staff.fill("#publish-public_title", "Payments hang at checkout")
    staff.get_by_role("button", name="Preview").click()
    expect(staff.get_by_test_id("publish-preview")).to_contain_text("Payments hang at checkout")
    staff.get_by_role("button", name="Publish on the status page").click()
    expect(staff.locator(".flash")).to_contain_text("Shown on the status page")
    staff.fill("#timeline textarea[name=body]", "We are rolling back the payment release.")
    staff.select_option("#timeline select[name=kind]", "communication")
    staff.click("button:has-text('Add entry')")
    expect(staff.locator("#timeline")).to_contain_text("We are rolling back")
    public.goto("/status/")
    expect(public.get_by_test_id("state-checkout")).to_have_text("Partial outage")
    expect(public.locator(f"#incident-{incident.pk}")).to_contain_text("We are rolling back the payment release.")
    expect(public.locator(f"#incident-{incident.pk} h2")).to_have_text("Payments hang at checkout")
    expect(public.locator("body")).not_to_contain_text("Problem report")
    assert violations == []
