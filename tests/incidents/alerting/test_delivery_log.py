"""An integration's page: when it last received a payload and its recent deliveries (accepted,
duplicate, refused with the reason), capped so a sender hammering bad payloads costs bounded rows."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import AlertDelivery, Incident, IntakeEvent, Integration
from ops import retention
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, admin_user, integration):
    client.force_login(admin_user)

    def get():
        response = client.get(f"/ops/integrations/{integration.pk}/")
        assert response.status_code == 200
        return response.content.decode()

    return get


def rows(html: str) -> list[str]:
    """The outcome of each log row, newest first."""
    return re.findall(r'<tr data-outcome="(\w+)">', html)


def test_the_page_lists_accepted_duplicate_and_refused_deliveries_with_reasons(
    post_alerts, page, integration, settings
):
    settings.ALERT_INTAKE_MAX_BODY_BYTES = 1024 * 1024
    assert "Nothing received yet" in page()
    assert post_alerts(alertmanager(alert())).status_code == 202
    assert post_alerts(alertmanager(alert())).json()["status"] == "duplicate"
    assert post_alerts(None, raw=b"{not json").status_code == 400
    bad = alertmanager(alert())
    del bad["alerts"][0]["labels"]
    assert post_alerts(bad).status_code == 400
    huge = alertmanager(alert(summary="x" * (1024 * 1024)))
    assert post_alerts(huge).status_code == 413

    html = page()
    assert rows(html) == ["refused", "refused", "refused", "duplicate", "accepted"]
    assert "Body is not valid JSON" in html
    assert "alerts[0].labels: This field is required." in html
    assert "The body is larger than 1048576 bytes" in html
    delivery = AlertDelivery.objects.get()
    incident = Incident.objects.get()
    assert f"Same payload as delivery #{delivery.pk}: nothing changed" in html
    # Both the accepted delivery and its duplicate link the incident it opened.
    assert html.count(f'href="/incidents/{incident.pk}/"') == 2
    assert "Last received" in html and "Nothing received yet" not in html
    # The latest accepted payload, pretty-printed.
    assert "&quot;APIHigh5xxRate&quot;" in html and '\n  "version": "4",' in html.replace("&quot;", '"')


def test_a_request_with_an_unknown_token_is_nobodys_and_is_not_logged(post_alerts, page):
    assert post_alerts(None, raw=b"{not json", token="x" * 43).status_code == 404
    assert post_alerts(alertmanager(alert()), kind="grafana").status_code == 404
    assert IntakeEvent.objects.count() == 0
    assert rows(page()) == []


def test_a_refused_body_keeps_only_its_first_4_kib(post_alerts, integration):
    body = b'{"version": "4", "alerts": "' + b"\x00<script>" * 10_000
    assert post_alerts(None, raw=body).status_code == 400
    event = IntakeEvent.objects.get()
    assert event.outcome == "refused" and event.status_code == 400 and event.body_size == len(body)
    assert len(event.body_excerpt) <= 4096 and "\x00" not in event.body_excerpt


def test_a_declared_oversize_body_is_refused_unread_and_logged(client, integration_and_token, settings):
    settings.ALERT_INTAKE_MAX_BODY_BYTES = 1024 * 1024
    _, token = integration_and_token
    body = b"x" * (1024 * 1024 + 10)
    response = client.post(f"/api/integrations/alertmanager/{token}/", body, content_type="application/json")
    assert response.status_code == 413
    event = IntakeEvent.objects.get()
    assert (event.outcome, event.status_code, event.body_size, event.body_excerpt) == ("refused", 413, len(body), "")


def test_refusals_and_duplicates_are_capped_per_integration_and_outcome(post_alerts, settings, integration):
    settings.INTAKE_LOG_KEEP = 10
    other, other_token = Integration.create(name="other", kind="alertmanager")
    assert post_alerts(None, raw=b"[]", token=other_token).status_code == 400
    assert post_alerts(alertmanager(alert())).status_code == 202
    for _ in range(3):
        post_alerts(alertmanager(alert()))
    for i in range(25):
        assert post_alerts(None, raw=f"bad {i}".encode()).status_code == 400

    refused = IntakeEvent.objects.filter(integration=integration, outcome="refused")
    assert refused.count() == 10
    assert sorted(e.body_excerpt for e in refused) == sorted(f"bad {i}" for i in range(15, 25))
    # A flood of refusals does not push the duplicates out, nor another integration's log.
    assert IntakeEvent.objects.filter(integration=integration, outcome="duplicate").count() == 3
    assert IntakeEvent.objects.filter(integration=other).count() == 1


def test_the_page_costs_the_same_queries_however_long_the_log(client, admin_user, post_alerts, integration):
    client.force_login(admin_user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/ops/integrations/{integration.pk}/").status_code == 200
        return len(captured)

    post_alerts(alertmanager(alert()))
    post_alerts(alertmanager(alert()))
    post_alerts(None, raw=b"nope")
    few = queries()
    for i in range(30):
        post_alerts(alertmanager(alert(f"Alert{i}"), group=f"group-{i}"))
        post_alerts(alertmanager(alert(f"Alert{i}"), group=f"group-{i}"))
        post_alerts(None, raw=b"nope")
    assert Incident.objects.count() == 31
    assert queries() == few


def test_the_log_shows_the_latest_fifty_entries(page, post_alerts):
    for i in range(60):
        post_alerts(None, raw=f"bad {i}".encode())
    html = page()
    assert len(rows(html)) == 50
    assert "bad 59" in html and "bad 9<" not in html


def test_payloads_are_escaped_on_the_page(post_alerts, page):
    post_alerts(alertmanager(alert(summary="<script>alert(1)</script>")))
    post_alerts(None, raw=b"<img src=x onerror=alert(1)>")
    html = page()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_list_shows_when_each_integration_last_received(client, admin_user, post_alerts, integration):
    Integration.create(name="silent", kind="grafana")
    client.force_login(admin_user)
    html = client.get("/ops/integrations/").content.decode()
    assert html.count(">never<") == 2
    post_alerts(None, raw=b"nope")  # a refusal is something received, too
    html = client.get("/ops/integrations/").content.decode()
    assert html.count(">never<") == 1
    assert f'href="/ops/integrations/{integration.pk}/"' in html


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("responder", 403), ("admin", 200)])
def test_the_integration_page_is_for_admins(client, user_for, role, status, integration):
    client.force_login(user_for(role))
    assert client.get(f"/ops/integrations/{integration.pk}/").status_code == status


def test_the_integration_page_of_an_unknown_integration_is_a_404(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/ops/integrations/999999/").status_code == 404
    response = client.get("/ops/integrations/999999/")
    assert "json" not in response.get("Content-Type", "")


def test_the_accepted_payload_shown_is_the_latest(post_alerts, page):
    post_alerts(alertmanager(alert("FirstAlert"), group="a"))
    post_alerts(alertmanager(alert("SecondAlert"), group="b"))
    html = page()
    shown = re.search(r'<pre class="payload" data-testid="last-payload">(.*?)</pre>', html, re.S).group(1)
    assert "SecondAlert" in shown and "FirstAlert" not in shown
    assert json.loads(shown.replace("&quot;", '"'))["groupKey"].endswith('{alertname="b"}')


def test_a_duplicate_outlives_the_payload_retention_removed(post_alerts, page):
    post_alerts(alertmanager(alert()))
    post_alerts(alertmanager(alert()))
    AlertDelivery.objects.update(received_at="2000-01-01T00:00:00Z")
    assert retention.run().counts["alert_payloads"] == 1
    html = page()
    assert rows(html) == ["duplicate"]
    assert "Same payload as delivery #?" in html
