"""The public problem-report intake (API and /status/ form): accepted, refused, throttled."""

import itertools
import json

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.api.reports import create_report
from incidents.models import ProblemReport
from opsportal import metrics
from opsportal.throttles import LeadBurstThrottle, LeadHourlyThrottle
from tests.factories import ServiceFactory
from tests.runbooks.conftest import redis_url  # noqa: F401 - skips without REDIS_URL

pytestmark = pytest.mark.django_db
_ips = (f"203.0.113.{n}" for n in itertools.count(1))
URL = "/api/public/reports/"


def report(**overrides) -> dict:
    body = {
        "name": "Jane Customer",
        "email": "jane.customer@example.com",
        "service": "checkout",
        "description": "Checkout keeps spinning after I press Pay.",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def checkout(db):
    return ServiceFactory(name="Checkout", slug="checkout", public=True)


@pytest.fixture
def api():
    return APIClient(REMOTE_ADDR=next(_ips))


def value(counter, **labels) -> float:
    return (counter.labels(**labels) if labels else counter)._value.get()


def test_the_runbook_finds_both_throttles_on_the_view():
    assert create_report.cls.throttle_classes == [LeadBurstThrottle, LeadHourlyThrottle]
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["lead_burst"] == "5/minute" and rates["lead_hourly"] == "20/hour"
    assert LeadBurstThrottle().get_rate() == "5/minute"


def test_a_report_is_stored_and_counted(api, checkout):
    before = value(metrics.public_leads_requests_total)
    response = api.post(URL, report(), format="json")
    assert response.status_code == 201
    stored = ProblemReport.objects.get(pk=response.json()["id"])
    assert (stored.name, stored.email, stored.service, stored.status) == (
        "Jane Customer", "jane.customer@example.com", checkout, "new",
    )  # fmt: skip
    assert "jane.customer" not in response.content.decode()
    assert value(metrics.public_leads_requests_total) == before + 1


def test_the_service_is_optional_but_must_be_public(api, checkout):
    ServiceFactory(name="Internal DB", slug="internal-db", public=False)
    assert api.post(URL, report(service=None), format="json").status_code == 201
    response = api.post(URL, report(service="internal-db"), format="json")
    assert response.status_code == 400 and "service" in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (report(name=None), "name"),
        (report(email=None), "email"),
        (report(email="not-an-email"), "email"),
        (report(description=None), "description"),
        (report(description="short"), "description"),
        (report(description="x" * 5001), "description"),
        (report(name="n" * 121), "name"),
        (report(service="no-such-service"), "service"),
    ],
)
def test_bad_reports_are_400_naming_the_field_and_store_nothing(api, checkout, body, field):
    invalid = value(metrics.public_leads_rejected_total, reason="invalid")
    response = api.post(URL, body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not ProblemReport.objects.exists()
    assert value(metrics.public_leads_rejected_total, reason="invalid") == invalid + 1


def test_a_filled_honeypot_is_refused(api, checkout):
    before = value(metrics.public_leads_rejected_total, reason="honeypot")
    response = api.post(URL, report(website="http://spam.example"), format="json")
    assert response.status_code == 400 and response.json() == {"website": ["Report rejected."]}
    assert not ProblemReport.objects.exists()
    assert value(metrics.public_leads_rejected_total, reason="honeypot") == before + 1


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2, 3]", b'"a string"', b"null", b"\xff\xfe\x00garbage"],
)
def test_malformed_bodies_are_400(api, raw):
    response = api.post(URL, raw, content_type="application/json")
    assert response.status_code == 400 and response.json()
    assert not ProblemReport.objects.exists()


def test_an_oversized_body_is_413_without_being_parsed(api, checkout):
    response = api.post(URL, report(description="x" * 40_000), format="json")
    assert response.status_code == 413 and "smaller than" in response.json()["detail"]
    assert not ProblemReport.objects.exists()


def test_unsupported_media_type_is_415(api):
    response = api.post(URL, b"<report/>", content_type="application/xml")
    assert response.status_code == 415


def test_only_post_is_allowed(api):
    assert api.get(URL).status_code == 405


def test_burst_throttle_answers_429_with_retry_after(api, checkout):
    throttled = value(metrics.public_leads_throttled_total)
    with time_machine.travel(timezone.now(), tick=False):
        for _ in range(5):
            assert api.post(URL, report(), format="json").status_code == 201
        response = api.post(URL, report(), format="json")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert ProblemReport.objects.count() == 5
    assert value(metrics.public_leads_throttled_total) == throttled + 1
    # The history lives in the shared cache (Redis when REDIS_URL is set), keyed by client IP.
    assert lead_history(f"throttle_lead_burst_{api.defaults['REMOTE_ADDR']}") == 5
    # Other clients are not affected.
    assert APIClient(REMOTE_ADDR=next(_ips)).post(URL, report(), format="json").status_code == 201


def test_hourly_throttle_answers_429_with_retry_after(api, checkout):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for n in range(20):
            if n and n % 5 == 0:
                traveller.shift(61)  # stay under the burst rate
            assert api.post(URL, report(), format="json").status_code == 201, n
        traveller.shift(61)
        response = api.post(URL, report(), format="json")
    assert response.status_code == 429
    assert 60 < int(response["Retry-After"]) <= 3600
    assert ProblemReport.objects.count() == 20


def lead_history(key: str) -> int:
    """Requests in a lead throttle's window: a Redis sorted set, or DRF's list in the file cache."""
    from opsportal.throttles import _redis_client

    client = _redis_client()
    if client is None:
        return len(cache.get(key, []))
    return client.zcard(cache.make_key(f"{key}:window"))


def test_concurrent_requests_cannot_all_slip_through_the_burst_throttle(redis_url):  # noqa: F811
    """Twenty requests from one address at the same instant: exactly five pass (DRF's read-then-write
    history would let several read "4 of 5" and pass together)."""
    import threading

    from django.test import RequestFactory

    from opsportal.throttles import LeadBurstThrottle

    address, start, passed = next(_ips), threading.Barrier(20), []

    def attempt():
        request = RequestFactory().post(URL, REMOTE_ADDR=address)
        start.wait()
        passed.append(LeadBurstThrottle().allow_request(request, None))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(passed) == [False] * 15 + [True] * 5
    assert lead_history(f"throttle_lead_burst_{address}") == 5


def test_signed_in_users_are_throttled_too(checkout, responder):
    client = APIClient(REMOTE_ADDR=next(_ips))
    client.force_authenticate(responder)
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [client.post(URL, report(), format="json").status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]


def test_the_intake_refuses_with_503_when_the_throttle_cache_is_down(api, checkout, settings):
    from tests.runbooks.conftest import free_port

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    response = api.post(URL, report(), format="json")
    assert response.status_code == 503 and response["Retry-After"] == "60"
    assert not ProblemReport.objects.exists()


def test_rates_come_from_the_environment(monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['lead_burst'])"
    )
    env = {"LEAD_BURST_RATE": "2/minute", "SECRET_KEY": "k" * 50, "DJANGO_SETTINGS_MODULE": "opsportal.settings"}
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PATH": "/usr/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.strip() == "2/minute", run.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env={"PATH": "/usr/bin", **env, "LEAD_BURST_RATE": "lots"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "LEAD_BURST_RATE" in bad.stderr


# --- the form on /status/ --------------------------------------------------------------------


@pytest.fixture
def browser():
    return Client(REMOTE_ADDR=next(_ips))


def test_the_form_stores_a_report_and_thanks_the_reporter(browser, checkout):
    response = browser.post("/status/report/", report(service=checkout.pk), follow=True)
    assert response.status_code == 200
    stored = ProblemReport.objects.get()
    assert f"your report {stored.reference} reached the on-call team" in response.content.decode()


def test_the_form_shows_errors_with_400(browser, checkout):
    response = browser.post("/status/report/", report(email="nope", service=""))
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not ProblemReport.objects.exists()


def test_the_form_honeypot_is_400(browser, checkout):
    response = browser.post("/status/report/", report(service="", website="x"))
    assert response.status_code == 400 and "could not be accepted" in response.content.decode()
    assert not ProblemReport.objects.exists()


def test_the_form_refuses_oversized_bodies_with_413(browser, checkout):
    response = browser.post("/status/report/", report(service="", description="x" * 40_000))
    assert response.status_code == 413
    assert not ProblemReport.objects.exists()


def test_the_form_is_throttled_by_the_same_throttles(browser, checkout):
    throttled = value(metrics.public_leads_throttled_total)
    with time_machine.travel(timezone.now(), tick=False):
        for _ in range(5):
            assert browser.post("/status/report/", report(service="")).status_code == 302
        response = browser.post("/status/report/", report(service=""))
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert "Try again in" in response.content.decode()
    assert ProblemReport.objects.count() == 5
    assert value(metrics.public_leads_throttled_total) == throttled + 1


def test_api_and_form_share_one_budget_per_ip(checkout):
    ip = next(_ips)
    with time_machine.travel(timezone.now(), tick=False):
        for _ in range(3):
            assert APIClient(REMOTE_ADDR=ip).post(URL, report(), format="json").status_code == 201
        for _ in range(2):
            assert Client(REMOTE_ADDR=ip).post("/status/report/", report(service="")).status_code == 302
        assert APIClient(REMOTE_ADDR=ip).post(URL, report(), format="json").status_code == 429


def test_the_reporters_email_never_reaches_the_logs(api, checkout, json_logs):
    api.post(URL, report(email="secret.person@example.org"), format="json", HTTP_X_REQUEST_ID="req-email-check-1")
    Client(REMOTE_ADDR=next(_ips)).post("/status/report/", report(email="secret.person@example.org", service=""))
    api.post(URL, json.dumps(report(email="bad@@example.org")), content_type="application/json")
    received = [r for r in json_logs.records if r["message"] == "problem report received"]
    assert len(received) == 2 and received[0]["request_id"] == "req-email-check-1"
    assert "secret.person" not in json_logs.text and "example.org" not in json_logs.text
