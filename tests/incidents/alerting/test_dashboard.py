"""The home page: open incidents by severity with their clocks, alerts firing now, MTTA/MTTR."""

from datetime import date, timedelta

import pytest
import time_machine
from django.utils import timezone

from tests.factories import IncidentFactory
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


def test_home_needs_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_open_incidents_by_severity_with_their_clock_state(client, viewer):
    now = timezone.now()
    with time_machine.travel(now - timedelta(minutes=20), tick=False):
        late = IncidentFactory(title="Checkout down", severity="SEV1")
    IncidentFactory(title="Replica lag", severity="SEV2")
    IncidentFactory(title="Old", severity="SEV3").transition_to("resolved")
    client.force_login(viewer)
    page = client.get("/").content.decode()
    assert "Checkout down" in page and "Replica lag" in page and "Old" not in page
    assert 'class="badge sev-SEV1" title="P0">SEV1 <strong>1</strong>' in page
    assert 'class="badge sev-SEV3" title="P2">SEV3 <strong>0</strong>' in page
    assert "clock-breached" in page and "overdue by 5m" in page  # SEV1 acknowledge clock: 15 min
    assert 'data-testid="breached">1 past a deadline' in page
    assert f'href="/incidents/{late.pk}/"' in page


def test_alerts_firing_now(client, viewer, post_alerts):
    post_alerts(alertmanager(alert(instance="a"), alert(instance="b")))
    client.force_login(viewer)
    page = client.get("/").content.decode()
    assert 'data-testid="firing-total">2 firing' in page
    assert "More than 1% of API requests return 5xx" in page


def test_mtta_and_mttr_per_window(client, viewer, responder):
    now = timezone.now()

    def incident(days_ago, ack_after, resolve_after):
        start = now - timedelta(days=days_ago)
        with time_machine.travel(start, tick=False):
            made = IncidentFactory()
        with time_machine.travel(start + timedelta(minutes=ack_after), tick=False):
            made.transition_to("acknowledged", by=responder)
        with time_machine.travel(start + timedelta(minutes=resolve_after), tick=False):
            made.transition_to("resolved", by=responder)

    incident(1, 10, 40)
    incident(2, 20, 80)
    incident(60, 60, 600)
    client.force_login(viewer)
    page = client.get("/").content.decode()
    rows = page.split('data-testid="response-times"')[1]
    assert "<td>Last 7 days</td><td>2</td><td>15m 00s</td><td>1h 00m</td>" in rows
    assert "<td>Last 30 days</td><td>2</td><td>15m 00s</td><td>1h 00m</td>" in rows
    assert "<td>Last 90 days</td><td>3</td><td>30m 00s</td><td>4h 00m</td>" in rows


def test_dashboard_queries_do_not_grow(client, viewer, post_alerts, django_assert_max_num_queries):
    client.force_login(viewer)

    def load(n):
        for i in range(n):
            incident = IncidentFactory(severity=f"SEV{i % 4 + 1}")
            post_alerts(alertmanager(alert(instance=f"i{n}-{i}"), group=f"g{n}-{i}"))
            if i % 2:  # reviews due soon, and open action items past due, for the reviews section
                incident.transition_to("resolved", by=viewer)
                incident.review.action_items.create(title=f"a{i}", kind="fix", due_date=date(2020, 1, 1))
        with django_assert_max_num_queries(15) as captured:
            assert client.get("/").status_code == 200
        return len(captured.captured_queries)

    assert load(2) == load(20)


def test_htmx_poll_returns_only_the_sections(client, viewer):
    client.force_login(viewer)
    response = client.get("/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'id="dash-open"' in body and 'id="dash-alerts"' in body and 'id="dash-times"' in body
    assert "Reviews due" in body
