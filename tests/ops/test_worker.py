"""Queues and failed tasks through a real Celery worker on the real broker (Redis in CI, the kombu
filesystem transport without REDIS_URL), and remediation steps run by a runbook on that worker."""

import time
import uuid

import pytest
from django.core.cache import cache

from incidents.models import TimelineEvent
from ops.models import AuditRecord, FailedTask
from opsportal.celery import app
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory
from tests.runbooks.conftest import auto, make_runbook, wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@app.task(name="tests.ops.mark")
def mark(marker: str) -> None:
    cache.set(f"ops-test:{marker}", "ran", 120)


@app.task(name="tests.ops.flaky")
def flaky(marker: str) -> None:
    if not cache.get(f"ops-test:fixed:{marker}"):
        raise ValueError(f"boom {marker}")
    cache.set(f"ops-test:{marker}", "ran", 120)


def ran(marker: str) -> bool:
    return cache.get(f"ops-test:{marker}") == "ran"


@pytest.fixture
def admin(api_for):
    return api_for("admin")


def test_pause_stops_consumption_and_resume_restarts_it(celery_worker, admin):
    marker = uuid.uuid4().hex
    response = admin.post("/api/ops/jobs/pause", {"queue": "runbooks"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["detail"].startswith("runbooks paused on 1 worker(s)")
    try:
        mark.apply_async((marker,), queue="runbooks")
        stats = wait_for(
            lambda: (s := admin.get("/api/ops/queues").json()["result"]["queues"]["runbooks"])["waiting"] and s,
            message="the task to wait on the broker",
        )
        assert stats["paused"] is True and stats["workers"] == []
        time.sleep(1.5)  # a worker still consuming would have run it by now
        assert not ran(marker)
    finally:
        response = admin.post("/api/ops/jobs/resume", {"queue": "runbooks"}, format="json")
    assert response.status_code == 200 and "resumed on 1 worker(s)" in response.json()["detail"]
    wait_for(lambda: ran(marker), message="the task to run after resume")
    assert [a.action for a in AuditRecord.objects.order_by("id")] == ["queue_pause", "queue_resume"]


def test_failed_tasks_are_listed_and_requeued(celery_worker, admin):
    marker = uuid.uuid4().hex
    flaky.apply_async((marker,), queue="runbooks")
    failed = wait_for(lambda: FailedTask.objects.filter(args=[marker]).first(), message="the failure to be recorded")
    listed = admin.get("/api/ops/tasks?status=failed").json()["tasks"]
    assert [(t["id"], t["name"], t["queue"], t["reason"]) for t in listed] == [
        (failed.pk, "tests.ops.flaky", "runbooks", f"ValueError: boom {marker}")
    ]
    cache.set(f"ops-test:fixed:{marker}", "yes", 120)  # the root cause is fixed
    response = admin.post("/api/ops/tasks/requeue", {"ids": [failed.pk]}, format="json")
    assert response.status_code == 200 and response.json()["detail"].startswith("Requeued 1 task(s): tests.ops.flaky")
    wait_for(lambda: ran(marker), message="the requeued task to run")
    failed.refresh_from_db()
    assert failed.requeued_at is not None and failed.handled_by.username == "root"
    assert admin.get("/api/ops/tasks?status=failed").json()["tasks"] == []
    again = admin.post("/api/ops/tasks/requeue", {"ids": [failed.pk]}, format="json")
    assert again.status_code == 409


def test_a_remediation_step_is_confirmed_run_audited_and_on_the_timeline(celery_worker, responder, responder2):
    incident = IncidentFactory(title="Stale dashboard", created_by=responder)
    runbook = make_runbook(
        "Dashboard stale",
        steps=[
            auto("queue_stats", {}, title="Queue stats"),
            auto("cache_invalidate", {"tags": ["dashboard"]}, title="Invalidate the dashboard"),
        ],
    )
    run = RunbookRun.start(runbook, by=responder, incident=incident)
    waiting = wait_for(
        lambda: RunbookRun.objects.filter(pk=run.pk, state="waiting_approval").first(), message="the confirmation"
    )
    step = waiting.step_runs.get(order=2)
    assert step.step.safety == "change"
    waiting.approve_step(step.pk, by=responder2, note="go")
    done = wait_for(
        lambda: RunbookRun.objects.filter(pk=run.pk, state__in=["succeeded", "failed"]).first(), message="the run"
    )
    assert done.state == "succeeded", list(done.step_runs.values_list("output", flat=True))
    # The solo worker is busy running this very step, so it cannot answer for itself: only the broker counts.
    assert done.step_runs.get(order=1).result["queues"]["runbooks"]["waiting"] == 0
    audit = AuditRecord.objects.get()
    assert (audit.action, audit.via, audit.actor, audit.incident, audit.ok) == (
        "cache_invalidate", "runbook", responder2, incident, True,
    )  # fmt: skip
    assert audit.params == {"tags": ["dashboard"], "dry_run": False, "dangerous": False}
    bodies = list(TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True))
    assert any("**Invalidate the dashboard** succeeded: OK: Invalidated" in b for b in bodies)
