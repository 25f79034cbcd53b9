"""JSON logs: one object per line on stdout, request context, personal data redacted."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from opsportal.logging import redact, redact_text

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_each_request_logs_one_line_with_its_context(client, responder, json_logs):
    client.force_login(responder)
    response = client.get("/incidents/", HTTP_X_REQUEST_ID="abc-123-request")
    assert response["X-Request-ID"] == "abc-123-request"
    line = next(r for r in json_logs.records if r["logger"] == "opsportal.request")
    assert {k: line[k] for k in ("level", "message", "request_id", "method", "route", "status", "user_id")} == {
        "level": "INFO",
        "message": "GET incidents/ 200",
        "request_id": "abc-123-request",
        "method": "GET",
        "route": "incidents/",
        "status": 200,
        "user_id": responder.pk,
    }
    assert isinstance(line["duration_ms"], float) and line["time"].endswith("+00:00")


def test_a_request_id_is_generated_when_missing_or_unsafe(client, json_logs):
    generated = client.get("/status/")["X-Request-ID"]
    assert len(generated) == 36
    injected = client.get("/status/", HTTP_X_REQUEST_ID='x"}\n{"level": "forged')["X-Request-ID"]
    assert injected != 'x"}\n{"level": "forged' and len(injected) == 36
    assert all(isinstance(r, dict) for r in json_logs.records)


def test_records_inside_a_request_carry_its_id(client, json_logs):
    client.post("/accounts/login/", {"username": "ghost", "password": "x"}, HTTP_X_REQUEST_ID="login-req-0001")
    failure = next(r for r in json_logs.records if r.get("event") == "auth.failure")
    assert failure["request_id"] == "login-req-0001" and failure["route"] == "accounts/login/"
    assert failure.get("password") != "x"


def test_passwords_tokens_cookies_and_authorization_never_appear(json_logs):
    client = Client(REMOTE_ADDR="198.51.100.90")
    client.cookies["sessionid"] = "cookie-value-9876543210"
    client.post(
        "/api/auth/token/?password=querypass123",
        {"username": "eve@example.com", "password": "hunter2-very-secret"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer tok-abcdefghijklmnop",
    )
    log = logging.getLogger("anything")
    log.warning("login for eve@example.com with password=hunter2 token: abcdef123456 from +44 20 7946 0958")
    log.info("headers", extra={"headers": {"Authorization": "Basic Zm9vOmJhcg==", "Cookie": "sessionid=abc"}})
    log.info("form", extra={"email": "eve@example.com", "phone": "555-123-4567", "api_token": "t0k3n"})
    text = json_logs.text
    for secret in (
        "eve@example.com", "hunter2", "abcdef123456", "7946", "Zm9vOmJhcg", "sessionid=abc", "555-123-4567",
        "t0k3n", "querypass123", "cookie-value-9876543210", "tok-abcdefghijklmnop",
    ):  # fmt: skip
        assert secret not in text, secret
    assert "[email]" in text and "[redacted]" in text and "[phone]" in text


def test_exceptions_are_logged_as_one_redacted_line(json_logs):
    try:
        raise RuntimeError("could not mail bob@example.com")
    except RuntimeError:
        logging.getLogger("boom").exception("failed")
    record = json_logs.records[-1]
    assert record["level"] == "ERROR" and "RuntimeError" in record["exc_info"]
    assert "bob@example.com" not in json_logs.text and "\n" not in json_logs.text.strip()


@pytest.mark.parametrize(
    "kept",
    ["2026-11-23", "2026-11-23T15:45:00.123+00:00", "10.20.30.40", "2001:db8::1", "INC-42",
     "550e8400-e29b-41d4-a716-446655440000", "took 1234567 ms", "token expired for this user"],
)  # fmt: skip
def test_redaction_keeps_what_is_not_personal(kept):
    assert redact_text(kept) == kept


def test_redaction_of_structures():
    assert redact({"user": {"email": "a@b.io", "name": "Al"}, "Set-Cookie": "x", "n": 3}) == {
        "user": {"email": "[redacted]", "name": "Al"},
        "Set-Cookie": "[redacted]",
        "n": 3,
    }


def test_stdout_gets_one_json_object_per_line():
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('opsportal.demo').warning('hello %s', 'carol@example.com')"
    )
    env = {**os.environ, "SECRET_KEY": "k" * 50, "DJANGO_SETTINGS_MODULE": "opsportal.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout.strip().splitlines()[-1])
    assert line["message"] == "hello [email]" and line["logger"] == "opsportal.demo" and line["level"] == "WARNING"


def test_celery_keeps_django_logging_and_carries_the_request_id():
    from celery import signals

    from opsportal.celery import app
    from opsportal.logging import current_request_id, request_context

    assert app.conf.worker_hijack_root_logger is False
    assert signals.setup_logging.receivers
    token = request_context.set({"request_id": "web-req-0000042"})
    headers: dict = {}
    try:
        signals.before_task_publish.send(sender="t", headers=headers, body=None)
    finally:
        request_context.reset(token)
    assert headers["request_id"] == "web-req-0000042"

    class Task:
        name = "demo.task"

        class request:
            request_id = "web-req-0000042"

    signals.task_prerun.send(sender=Task, task_id="task-1", task=Task)
    assert current_request_id() == "web-req-0000042"
    signals.task_postrun.send(sender=Task, task_id="task-1", task=Task)
    assert current_request_id() is None


def test_gunicorn_logs_json_and_skips_its_access_log():
    import runpy

    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert config["accesslog"] is None
    assert config["logconfig_dict"]["formatters"]["json"]["()"] == "opsportal.logging.JsonFormatter"
    assert "--config gunicorn.conf.py" in (ROOT / "Procfile").read_text()
