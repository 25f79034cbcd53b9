"""The retention sweep deletes exactly what is past RETENTION_DAYS (and expired login attempts),
in batches, and reports counts, duration and metrics."""

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt, AccessAttemptExpiration
from django.utils import timezone
from prometheus_client import REGISTRY

from incidents.models import AlertDelivery, Integration, ProblemReport, WebhookDelivery, WebhookEndpoint
from ops import retention
from ops.models import FailedTask, RetentionRun
from runbooks.models import RunbookRun, StepRun
from tests.runbooks.conftest import make_runbook, manual

pytestmark = pytest.mark.django_db


def attempt(username: str, *, expires_in: timedelta | None = None) -> AccessAttempt:
    row = AccessAttempt.objects.create(
        username=username, ip_address="10.0.0.1", user_agent="ua", http_accept="*/*", path_info="/accounts/login/",
        get_data="", post_data="", failures_since_start=1,
    )  # fmt: skip
    if expires_in is not None:
        AccessAttemptExpiration.objects.create(access_attempt=row, expires_at=timezone.now() + expires_in)
    return row


def webhook(endpoint, n: int, state: str) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=endpoint, event="incident.created", source_key=f"k{n}", payload={}, state=state,
        retry_until=timezone.now() + timedelta(hours=1),
    )  # fmt: skip


@pytest.fixture
def data(responder, settings):
    settings.RETENTION_DAYS = 30
    settings.ALERT_DELIVERY_RETENTION_DAYS = 10
    settings.RETENTION_BATCH_SIZE = 2  # several batches
    now = timezone.now()
    endpoint = WebhookEndpoint.objects.create(name="chat", url="http://chat.example/hook", events=["incident.created"])
    integration, _ = Integration.create(name="am", kind="alertmanager")
    runbook = make_runbook(steps=[manual("Look")])
    old, new = {}, {}
    with time_machine.travel(now - timedelta(days=31), tick=False):
        old["attempt"] = attempt("old")
        old["webhooks"] = [webhook(endpoint, n, s) for n, s in enumerate(["delivered", "failed", "delivered"])]
        old["pending_webhook"] = webhook(endpoint, 10, "pending")  # still being retried: kept
        old["failed_task"] = FailedTask.objects.create(task_id="old", name="x", exception="E")
        old_run = RunbookRun.start(runbook, by=responder)
        old_run.complete_step(old_run.step_runs.get().pk, by=responder, note="done")
        StepRun.objects.filter(run=old_run).update(output="old output")
        old["report"] = ProblemReport.submit(name="Jane", email="jane@example.com", description="Pay button spins.")
    with time_machine.travel(now - timedelta(days=11), tick=False):
        old["alert"] = AlertDelivery.objects.create(
            integration=integration, payload={}, payload_hash="a", state="processed"
        )
        new["pending_alert"] = AlertDelivery.objects.create(integration=integration, payload={}, payload_hash="b")
    new["expired_attempt"] = attempt("locked-then-expired", expires_in=timedelta(minutes=-1))
    new["live_attempt"] = attempt("still-locked", expires_in=timedelta(minutes=10))
    new["webhook"] = webhook(endpoint, 20, "delivered")
    new["failed_task"] = FailedTask.objects.create(task_id="new", name="x", exception="E")
    new_run = RunbookRun.start(runbook, by=responder)
    new_run.complete_step(new_run.step_runs.get().pk, by=responder)
    StepRun.objects.filter(run=new_run).update(output="new output")
    new["report"] = ProblemReport.submit(name="Joe", email="joe@example.com", description="Login page is blank.")
    return {"old": old, "new": new, "old_run": old_run, "new_run": new_run}


def test_deletes_exactly_what_is_expired(data):
    before = REGISTRY.get_sample_value("retention_deleted_total", {"kind": "webhook_deliveries"}) or 0
    record = retention.run()
    assert record.counts == {
        "login_attempts": 2, "webhook_deliveries": 3, "alert_payloads": 1, "failed_tasks": 1, "step_outputs": 1,
        "reporter_details": 1,
    }  # fmt: skip
    assert list(FailedTask.objects.values_list("task_id", flat=True)) == ["new"]
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {"still-locked"}
    assert set(WebhookDelivery.objects.values_list("state", "source_key")) == {("pending", "k10"), ("delivered", "k20")}
    assert list(AlertDelivery.objects.values_list("payload_hash", flat=True)) == ["b"]
    assert StepRun.objects.get(run=data["old_run"]).output == ""
    assert StepRun.objects.get(run=data["new_run"]).output == "new output"
    assert RunbookRun.objects.count() == 2  # the runs and their results stay
    # The reporter's name and e-mail (personal data) go; the report stays.
    assert ProblemReport.objects.filter(pk=data["old"]["report"].pk).values_list(
        "name", "email", "description"
    ).get() == ("", "", "Pay button spins.")
    assert ProblemReport.objects.filter(pk=data["new"]["report"].pk).values_list("name", "email").get() == (
        "Joe",
        "joe@example.com",
    )
    assert record.duration_ms >= 0 and RetentionRun.objects.get() == record
    after = REGISTRY.get_sample_value("retention_deleted_total", {"kind": "webhook_deliveries"})
    assert after - before == 3


def test_a_dry_run_counts_and_deletes_nothing(data):
    record = retention.run(dry_run=True)
    assert record.dry_run and record.total == 9 and record.counts["reporter_details"] == 1
    assert ProblemReport.objects.filter(name="Jane").exists()
    assert AccessAttempt.objects.count() == 3 and WebhookDelivery.objects.count() == 5


def test_a_second_run_finds_nothing(data):
    retention.run()
    assert retention.run().total == 0


def test_through_the_api_with_the_last_run(api_for, data):
    response = api_for("admin").post("/api/ops/retention/run", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["detail"].startswith(
        "Removed 2 login attempts, 3 webhook deliveries, 1 alert payloads, 1 failed tasks, 1 step outputs"
    )
    last = api_for("admin").get("/api/ops/retention/run").json()["last_run"]
    assert last["counts"]["webhook_deliveries"] == 3
