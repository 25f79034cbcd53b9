"""/metrics: the runbooks' names, bounded cardinality, and the guard in every mode."""

import ipaddress
import re

import pytest
from django.test import Client

from incidents.models import Incident
from opsportal import metrics
from runbooks import metrics as runbook_metrics
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db
SECRET = "s3cret-for-the-scraper-0123"


@pytest.fixture
def enabled(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_GUARD = "none"
    return settings


def scrape(client=None, **headers) -> str:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_disabled_metrics_are_404(settings, client):
    settings.METRICS_ENABLED = False
    assert client.get("/metrics").status_code == 404


def test_the_runbook_names_are_exposed(enabled, client, responder):
    client.get("/status/")
    text = scrape(client)
    for name in (
        "http_requests_total", "exceptions_total", "auth_success_total", "auth_failures_total",
        "auth_lockouts_total", "public_leads_requests_total", "public_leads_throttled_total",
        "incidents_open", "incident_time_to_acknowledge_seconds", "incident_time_to_resolve_seconds",
        "runbook_runs_total", "runbook_step_duration_seconds", "django_http_requests_total_by_view_transport_method",
    ):  # fmt: skip
        assert f"# TYPE {name}" in text, name
    assert 'http_requests_total{method="GET",route="status/",status="200"}' in text


def test_open_incidents_by_severity_come_from_the_database(enabled, responder):
    IncidentFactory(severity="SEV1")
    IncidentFactory(severity="SEV1")
    done = IncidentFactory(severity="SEV2")
    done.transition_to("resolved", by=responder)
    text = scrape()
    assert 'incidents_open{severity="SEV1"} 2.0' in text
    assert 'incidents_open{severity="SEV2"} 0.0' in text


def test_time_to_acknowledge_and_resolve_are_observed(enabled, responder, django_capture_on_commit_callbacks):
    ack = metrics.incident_time_to_acknowledge_seconds.labels(severity="SEV4")
    res = metrics.incident_time_to_resolve_seconds.labels(severity="SEV4")
    before = (ack._sum.get(), res._sum.get())
    incident = IncidentFactory(severity="SEV4")
    Incident.objects.filter(pk=incident.pk).update(detected_at=incident.detected_at.replace(year=2000))
    with django_capture_on_commit_callbacks(execute=True):
        incident.transition_to("acknowledged", by=responder)
        incident.transition_to("resolved", by=responder)
    assert ack._sum.get() - before[0] > 3600 * 24 * 365
    assert res._sum.get() - before[1] > 3600 * 24 * 365


def test_runbook_metrics_helpers(enabled):
    runs = runbook_metrics.runbook_runs_total.labels(result="succeeded")._value.get()
    runbook_metrics.record_runbook_run("succeeded")
    runbook_metrics.observe_runbook_step("postgres", 0.3)
    runbook_metrics.record_runbook_run("weird value with spaces {}")
    assert runbook_metrics.runbook_runs_total.labels(result="succeeded")._value.get() == runs + 1
    text = scrape()
    assert 'runbook_step_duration_seconds_bucket{action="postgres",le="0.5"}' in text
    assert 'runbook_runs_total{result="other"}' in text


@pytest.mark.urls("tests.opsportal.boom_urls")
def test_unhandled_exceptions_are_counted_by_type_and_location(enabled):
    counter = metrics.exceptions_total.labels(exception_type="ValueError", location="tests.opsportal.boom_urls.boom")
    before = counter._value.get()
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert counter._value.get() == before + 1
    assert 'http_requests_total{method="GET",route="boom/",status="500"}' in scrape()


def test_a_thousand_distinct_urls_do_not_add_series(enabled, client, responder):
    client.force_login(responder)
    paths = [
        lambda n: f"/no/such/page/{n}",
        lambda n: f"/incidents/{n + 10_000}/",
        lambda n: f"/api/incidents/{n + 10_000}/?x={n}",
        lambda n: f"/static/nothing-{n}.css",
    ]
    for n in range(10):
        for make in paths:
            client.get(make(n))
    before = series(scrape(client))
    for n in range(10, 1010):
        client.get(paths[n % len(paths)](n))
    after = series(scrape(client))
    assert after == before, sorted(after - before)[:10]
    assert not [s for s in after if re.search(r"/(no/such|nothing-)|100\d\d", s)]


# --- the guard -----------------------------------------------------------------------------------


def test_secret_guard(enabled, json_logs):
    enabled.METRICS_GUARD, enabled.METRICS_GUARD_SECRET = "secret", SECRET
    client = Client(REMOTE_ADDR="192.0.2.10")
    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_X_METRICS_SECRET="nope")
    assert missing.status_code == wrong.status_code == 403
    assert "missing" in missing.content.decode() and "wrong" in wrong.content.decode()
    assert "http_requests_total" in scrape(client, HTTP_X_METRICS_SECRET=SECRET)
    warnings = [r for r in json_logs.records if r.get("event") == "metrics_guard"]
    assert len(warnings) == 2 and all(r["level"] == "WARNING" and "metrics_guard" in r["message"] for r in warnings)
    assert SECRET not in json_logs.text and "nope" not in json_logs.text


def test_cidr_guard(enabled, json_logs):
    enabled.METRICS_GUARD = "cidr"
    enabled.METRICS_GUARD_ALLOWLIST = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    enabled.TRUSTED_PROXY_COUNT, enabled.TRUSTED_PROXY_CIDRS = 0, []
    assert "http_requests_total" in scrape(Client(REMOTE_ADDR="10.1.2.3"))
    assert "http_requests_total" in scrape(Client(REMOTE_ADDR="::1"))
    outside = Client(REMOTE_ADDR="192.0.2.10").get("/metrics")
    assert outside.status_code == 403
    # A forged X-Forwarded-For from outside does not get in.
    forged = Client(REMOTE_ADDR="192.0.2.10").get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert forged.status_code == 403
    refusals = [r for r in json_logs.records if r.get("event") == "metrics_guard"]
    assert [r["client_ip"] for r in refusals] == ["192.0.2.10", "192.0.2.10"]


def test_cidr_guard_behind_a_trusted_proxy(enabled):
    enabled.METRICS_GUARD = "cidr"
    enabled.METRICS_GUARD_ALLOWLIST = [ipaddress.ip_network("10.0.0.0/8")]
    enabled.TRUSTED_PROXY_COUNT = 1
    enabled.TRUSTED_PROXY_CIDRS = [ipaddress.ip_network("172.16.0.0/12")]
    proxy = Client(REMOTE_ADDR="172.16.0.2")
    assert proxy.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    assert proxy.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.10").status_code == 403


def test_only_get(enabled, client):
    assert client.post("/metrics").status_code == 405


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METRICS_GUARD": "maybe"}, "METRICS_GUARD"),
        ({"METRICS_GUARD": "secret", "METRICS_GUARD_SECRET": "short"}, "METRICS_GUARD_SECRET"),
        ({"METRICS_GUARD": "cidr"}, "METRICS_GUARD_ALLOWLIST"),
        ({"METRICS_GUARD": "cidr", "METRICS_GUARD_ALLOWLIST": "10.0.0.0/33"}, "METRICS_GUARD_ALLOWLIST"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT"),
        ({"TRUSTED_PROXY_CIDRS": "10.0.0.0/33"}, "TRUSTED_PROXY_CIDRS"),
        ({"AUTH_RATE_LIMIT": "fast"}, "AUTH_RATE_LIMIT"),
        ({"AUTH_LOGIN_MAX_ATTEMPTS": "0"}, "AUTH_LOGIN_MAX_ATTEMPTS"),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_variable(env, message):
    from tests.opsportal.test_settings import load_settings

    result = load_settings(**env)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_made_up_methods_and_statuses_add_no_series(enabled):
    client = Client()
    client.generic("M123", "/health")
    client.generic("PROPFIND", "/api/incidents/")
    before = series(scrape())
    for n in range(5):
        client.generic(f"X{n}", "/health")
    text = scrape()
    assert "M123" not in text and "PROPFIND" not in text and "X3" not in text
    assert 'method="other"' in text
    assert {name for name in series(text) - before if "health" in name} == set()  # five methods, no new series
