"""Production settings: check --deploy clean, headers, cookies, sessions, CSRF on portal actions."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from incidents.models import ProblemReport
from tests.factories import ServiceFactory

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-like-9f8e7d6c5b4a3210-aZbYcXdWeVfUgThSiRjQkPlOmN-0123456789",
    "ALLOWED_HOSTS": "ops.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://ops.example.com",
    "SECURE_SSL_REDIRECT": "",
    "METRICS_ENABLED": "true",
    "METRICS_GUARD": "secret",
    "METRICS_GUARD_SECRET": "a-long-scraper-secret-0123456789",
    # Production runs on Postgres and Redis; check --deploy connects to neither.
    "DATABASE_URL": "postgres://ops@db.internal:5432/ops",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "OPSPORTAL_VAR_DIR": str(ROOT / "var" / "test"),
}


def manage(*args, **env) -> subprocess.CompletedProcess:
    # Only what a deployment would have (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for themselves).
    skipped = {"DEBUG", "SECURE_SSL_REDIRECT", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment = {k: v for k, v in os.environ.items() if k not in skipped}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_mode_passes_check_deploy_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_about_an_unguarded_metrics_endpoint():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "METRICS_GUARD": "none"})
    assert result.returncode != 0 and "opsportal.W001" in result.stderr


def test_debug_mode_is_what_make_run_uses():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "hasattr(s, 'CONTENT_SECURITY_POLICY_REPORT_ONLY'))"
    )
    environment = {**os.environ, "DEBUG": "true", "SECRET_KEY": "x", "DJANGO_SETTINGS_MODULE": "opsportal.settings"}
    environment.pop("SECURE_SSL_REDIRECT", None)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert run.stdout.split() == ["False", "False", "0", "True"], run.stderr


@pytest.mark.django_db
def test_responses_carry_the_security_headers(client):
    response = client.get("/status/")
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_secure_httponly_cookies_and_rotated_session_key(responder, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    client = Client(REMOTE_ADDR="198.51.100.120")
    page = client.get("/accounts/login/")
    csrf = page.cookies["csrftoken"]
    assert csrf["secure"] and csrf["httponly"]
    client.session["probe"] = 1
    session = client.session
    session["probe"] = "before"
    session.save()
    before = session.session_key
    client.cookies["sessionid"] = before
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-for-tests"})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie.value != before


@pytest.mark.django_db
def test_the_session_expires_after_the_idle_timeout(client, responder, settings):
    import time_machine
    from django.utils import timezone

    assert settings.SESSION_COOKIE_AGE == 60 * 60
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client.force_login(responder)
        traveller.shift(50 * 60)
        assert client.get("/incidents/").status_code == 200  # activity moves the expiry
        traveller.shift(50 * 60)
        assert client.get("/incidents/").status_code == 200
        traveller.shift(61 * 60)
        assert client.get("/incidents/").status_code == 302  # idle too long: signed out


@pytest.mark.django_db
def test_the_session_row_is_written_at_most_once_a_minute(client, responder):
    """The idle timeout moves with activity without an UPDATE of the session on every request."""
    import time_machine
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    def session_writes() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/incidents/").status_code == 200
        return sum(q["sql"].startswith(("UPDATE", "INSERT")) and "django_session" in q["sql"] for q in queries)

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client.force_login(responder)
        assert session_writes() == 1  # the first request after sign-in moves the expiry
        traveller.shift(30)
        assert session_writes() == 0
        traveller.shift(31)
        assert session_writes() == 1
        traveller.shift(59 * 60 + 30)  # idle just under the timeout since that write
        assert session_writes() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/status/report/", "/accounts/login/", "/incidents/reports/1/escalate/", "/incidents/reports/1/dismiss/",
     "/incidents/1/public/", "/incidents/new/"],
)  # fmt: skip
def test_portal_actions_need_the_csrf_token(responder, path):
    ServiceFactory(slug="x", public=True)
    ProblemReport.submit(name="a", email="a@example.com", description="broken thing here")
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="198.51.100.121")
    if path != "/status/report/" and path != "/accounts/login/":
        client.force_login(responder)
    response = client.post(path, {"username": "alice", "password": "pw-for-tests", "name": "a", "email": "a@b.io"})
    assert response.status_code == 403
    assert ProblemReport.objects.count() == 1
