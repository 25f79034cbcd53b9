"""An alert arrives; the responder sees it on the dashboard and acknowledges before the clock runs out."""

import json

import pytest
from django.test import Client
from playwright.sync_api import expect

from incidents.models import Incident, Integration
from opsportal.celery import app as celery_app
from tests.factories import ServiceFactory, UserFactory
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_alert_opens_incident_with_live_clocks(new_page, login, eager):
    UserFactory(username="alice", role="responder")
    ServiceFactory(name="Cosmetica API", slug="cosmetica-api")
    _, token = Integration.create(name="prod-am", kind="alertmanager")
    response = Client().post(
        f"/api/integrations/alertmanager/{token}/", json.dumps(alertmanager(alert())), content_type="application/json"
    )
    assert response.status_code == 202
    incident = Incident.objects.get()

    page = new_page()
    login(page, "alice")
    page.goto("/")
    open_section = page.locator("#dash-open")
    expect(open_section).to_contain_text("More than 1% of API requests return 5xx")
    expect(page.get_by_test_id("firing-total")).to_have_text("1 firing")

    open_section.get_by_role("link", name=incident.reference).click()
    expect(page.locator("#alerts")).to_contain_text("APIHigh5xxRate")
    ack = page.get_by_test_id("sla-ack").locator("time.countdown")
    expect(ack).to_contain_text("left")
    first = ack.text_content()
    expect(ack).not_to_have_text(first)  # ticks in the browser, no reload

    page.get_by_role("button", name="Acknowledge", exact=True).click()
    expect(page.get_by_test_id("status")).to_have_text("Acknowledged")
    expect(page.get_by_test_id("sla-ack")).to_contain_text("in time")
