"""Dangerous ops actions outside runbooks: asked for with a reason and a dry run, approved by a
second admin (never the requester), run once by a real worker, audited and written on the
incident's timeline; rejected, withdrawn and expired requests never run."""

import time
import uuid
from datetime import timedelta

import psycopg
import pytest
import time_machine
from django.utils import timezone

from incidents.models import TimelineEvent
from ops import approvals
from ops.choices import RequestState
from ops.models import ActionRequest, AuditRecord, FailedTask
from tests.factories import UserFactory
from tests.ops.test_actions import active_pids, sleeper
from tests.runbooks.conftest import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed(db):
    return FailedTask.objects.create(task_id=uuid.uuid4().hex, name="x.poison", queue="celery", exception="E: bad")


def timeline(incident) -> list[str]:
    return list(TimelineEvent.objects.filter(incident=incident).order_by("id").values_list("body", flat=True))


def ask_remove(api, failed, incident=None):
    body = {"action": "remove_task", "params": {"ids": [failed.pk]}, "reason": "poison message, retries loop"}
    if incident is not None:
        body["incident"] = incident.pk
    return api.post("/api/ops/requests", body, format="json")


def test_asking_stores_a_pending_request_with_its_dry_run_and_changes_nothing(api_for, failed, incident):
    response = ask_remove(api_for("admin"), failed, incident)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "pending" and body["requested_by"] == "root"
    assert body["preview"]["summary"] == f"Dry run: would remove failed tasks [{failed.pk}]."
    assert body["detail"] == (
        f"Request #{body['id']} waits for another admin's approval. Dry run: would remove failed tasks [{failed.pk}]."
    )
    failed.refresh_from_db()
    assert failed.removed_at is None
    # The request's entry, then the approval page's (no other admin here: nobody to page, said so).
    assert "Dangerous ops action `remove_task`" in timeline(incident)[-2]
    assert "waiting for another admin's approval: poison message" in timeline(incident)[-2]
    assert timeline(incident)[-1].startswith("Nobody to page for approval of `remove_task`")
    listed = api_for("admin").get("/api/ops/requests?state=pending").json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]


def test_nobody_approves_their_own_request(api_for, failed):
    asked = ask_remove(api_for("admin"), failed).json()
    response = api_for("admin").post(f"/api/ops/requests/{asked['id']}/approve", {}, format="json")
    assert response.status_code == 403 and "another admin has to" in response.json()["detail"]
    assert ActionRequest.objects.get().state == RequestState.PENDING


def test_approving_queues_it_and_a_redelivery_does_not_run_it_twice(
    api_for, api2, admin2, failed, incident, django_capture_on_commit_callbacks
):
    asked = ask_remove(api_for("admin"), failed, incident).json()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = api2.post(f"/api/ops/requests/{asked['id']}/approve", {"note": "checked it"}, format="json")
    assert response.status_code == 202 and response.json()["state"] == "approved"
    assert len(queued) == 1  # the worker task, sent after commit
    failed.refresh_from_db()
    assert failed.removed_at is None  # nothing runs in the web request

    assert approvals.execute(asked["id"]).state == RequestState.SUCCEEDED
    assert approvals.execute(asked["id"]) is None  # the same message delivered again
    failed.refresh_from_db()
    assert failed.removed_at is not None
    audit = AuditRecord.objects.get(dry_run=False)
    assert (audit.action, audit.actor.username, audit.approved_by, audit.incident, audit.ok) == (
        "remove_task", "root", admin2, incident, True,
    )  # fmt: skip
    assert "approved by second: checked it; running it now" in timeline(incident)[-2]
    assert timeline(incident)[-1] == (
        "Ops action `remove_task` on portal by root via api, approved by second: "
        "Removed 1 failed task(s); they will not be retried."
    )
    again = api2.post(f"/api/ops/requests/{asked['id']}/approve", {}, format="json")
    assert again.status_code == 409 and "already done by second" in again.json()["detail"]


def test_rejected_and_withdrawn_requests_never_run(api_for, api2, failed):
    first = ask_remove(api_for("admin"), failed).json()
    rejected = api2.post(f"/api/ops/requests/{first['id']}/reject", {"note": "fix the task instead"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    second = ask_remove(api_for("admin"), failed).json()
    withdrawn = api_for("admin").post(f"/api/ops/requests/{second['id']}/reject", {}, format="json")
    assert withdrawn.json()["state"] == "cancelled"
    late = api2.post(f"/api/ops/requests/{second['id']}/approve", {}, format="json")
    assert late.status_code == 409 and "already cancelled by root" in late.json()["detail"]
    assert approvals.execute(first["id"]) is None
    failed.refresh_from_db()
    assert failed.removed_at is None
    assert not AuditRecord.objects.filter(dry_run=False).exists()


def test_an_undecided_request_expires(api_for, api2, failed, settings):
    settings.OPS_APPROVAL_TTL_MINUTES = 30
    asked = ask_remove(api_for("admin"), failed).json()
    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        response = api2.post(f"/api/ops/requests/{asked['id']}/approve", {}, format="json")
        assert response.status_code == 409 and "expired" in response.json()["detail"]
        assert api2.get(f"/api/ops/requests/{asked['id']}").json()["state"] == "expired"
    failed.refresh_from_db()
    assert failed.removed_at is None


def test_a_request_whose_worker_died_is_failed_by_the_sweep(api_for, admin2, failed, incident):
    asked = approvals.ask("remove_task", {"ids": [failed.pk]}, by=UserFactory(role="admin"), reason="r",
                          incident=incident)  # fmt: skip
    approvals.approve(asked.pk, by=admin2)
    ActionRequest.objects.filter(pk=asked.pk).update(state=RequestState.RUNNING, started_at=timezone.now())
    assert approvals.sweep() == {"expired": 0, "resent": 0, "lost": 0}  # still within its time limit
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert approvals.sweep() == {"expired": 0, "resent": 0, "lost": 1}
    asked.refresh_from_db()
    assert asked.state == RequestState.FAILED and "worker running it was lost" in asked.summary
    assert "whether the action took effect is unknown" in timeline(incident)[-1]


def test_a_change_action_run_for_an_incident_is_on_its_timeline(api_for, incident, admin_user):
    response = api_for("admin").post("/api/ops/maintenance", {"enabled": True, "incident": incident.pk}, format="json")
    assert response.status_code == 200
    assert timeline(incident)[-1] == (
        "Ops action `maintenance_mode` on portal by root via api: Maintenance mode turned on."
    )
    assert AuditRecord.objects.get().incident == incident
    entries = len(timeline(incident))
    api_for("admin").post("/api/ops/maintenance", {"enabled": False}, format="json")
    assert len(timeline(incident)) == entries  # not run for the incident: not on its timeline


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_an_approved_request_runs_on_a_real_worker(celery_worker, api_for, api2, failed):
    asked = ask_remove(api_for("admin"), failed).json()
    assert api2.post(f"/api/ops/requests/{asked['id']}/approve", {}, format="json").status_code == 202
    done = wait_for(
        lambda: api2.get(f"/api/ops/requests/{asked['id']}").json()["state"] in ("succeeded", "failed"),
        message="the worker to run the approved request",
    )
    assert done
    row = ActionRequest.objects.get()
    assert (row.state, row.summary) == ("succeeded", "Removed 1 failed task(s); they will not be retried.")
    assert row.started_at and row.finished_at
    assert FailedTask.objects.get().removed_at is not None


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_an_approval_while_the_broker_is_down_is_kept_and_the_sweep_sends_it(
    celery_worker, api_for, api2, failed, monkeypatch, caplog
):
    from kombu.exceptions import OperationalError

    from ops.tasks import execute_request

    asked = ask_remove(api_for("admin"), failed).json()

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patched:
        patched.setattr(execute_request, "apply_async", broker_down)
        response = api2.post(f"/api/ops/requests/{asked['id']}/approve", {}, format="json")
    assert response.status_code == 202 and response.json()["state"] == "approved"
    assert "could not be queued" in caplog.text
    assert approvals.sweep()["resent"] == 0  # too early to call it lost
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        assert approvals.sweep()["resent"] == 1
    wait_for(lambda: ActionRequest.objects.get().state == RequestState.SUCCEEDED, message="the worker to run it")
    failed.refresh_from_db()
    assert failed.removed_at is not None
    assert AuditRecord.objects.filter(dry_run=False).count() == 1  # ran once


def test_a_flush_pattern_becomes_a_request_for_approval(api_for, api2, redis_url):
    from django.core.cache import cache

    cache.set("ops-approval-test", "x", 60)
    body = {"pattern": "*", "dangerous": True, "reason": "poisoned entries everywhere"}
    response = api_for("admin").post("/api/ops/cache/invalidate", body, format="json")
    assert response.status_code == 202 and response.json()["action"] == "cache_invalidate"
    assert cache.get("ops-approval-test") == "x"  # nothing deleted yet
    row = ActionRequest.objects.get()
    assert row.params == {"pattern": "*", "dangerous": True}
    api2.post(f"/api/ops/requests/{row.pk}/approve", {}, format="json")
    assert approvals.execute(row.pk).state == RequestState.SUCCEEDED
    assert cache.get("ops-approval-test") is None


@pytest.mark.postgres
def test_terminate_ends_exactly_the_queries_the_approver_saw(pg_dsn, admin_user, admin2):
    outcome: dict = {}
    first = sleeper(pg_dsn, 60, outcome, "first")
    wait_for(lambda: outcome.get("first_pid") in active_pids(pg_dsn), message="the first query to run")
    time.sleep(1.2)
    asked = approvals.ask("terminate_long_queries", {"min_minutes": 1 / 60}, by=admin_user, reason="locks")
    assert [q["pid"] for q in asked.preview["queries"]] == [outcome["first_pid"]]
    later = sleeper(pg_dsn, 60, outcome, "later")  # old enough too by the time it is approved
    wait_for(lambda: outcome.get("later_pid") in active_pids(pg_dsn), message="the later query to run")
    time.sleep(1.2)
    try:
        approvals.approve(asked.pk, by=admin2)
        done = approvals.execute(asked.pk)
        assert done.state == RequestState.SUCCEEDED, done.summary
        assert done.result["terminated"] == [outcome["first_pid"]]
        assert done.summary.startswith("Terminated 1 of 1 query")
        first.join(10)
        assert outcome["first"] == "terminated"
        assert outcome["later_pid"] in active_pids(pg_dsn)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_cancel_backend(%s)", [outcome["later_pid"]])
            conn.execute("SELECT pg_cancel_backend(%s)", [outcome["first_pid"]])
        later.join(10)
        first.join(10)


def test_terminate_with_nothing_to_end_is_not_stored(admin_user, db):
    from runbooks.actions import ActionError, ParamsError

    with pytest.raises((ActionError, ParamsError)):
        approvals.ask("terminate_long_queries", {"min_minutes": 600}, by=admin_user, reason="r")
    assert not ActionRequest.objects.exists()


def test_subscribed_webhooks_hear_that_an_approval_is_waiting(
    api_for, failed, incident, django_capture_on_commit_callbacks
):
    from incidents.models import WebhookDelivery, WebhookEndpoint

    WebhookEndpoint.objects.create(
        name="ops-chat", url="http://127.0.0.1:9/hook", secret="s", events=["ops.approval_requested"]
    )
    WebhookEndpoint.objects.create(
        name="other", url="http://127.0.0.1:9/other", secret="s", events=["incident.created"]
    )
    with django_capture_on_commit_callbacks(execute=False):
        asked = ask_remove(api_for("admin"), failed, incident).json()
    delivery = WebhookDelivery.objects.get(event="ops.approval_requested")
    assert delivery.endpoint.name == "ops-chat" and delivery.incident == incident
    assert delivery.payload["text"] == (
        f"root asks another admin to approve `remove_task` (request #{asked['id']}): poison message, retries loop"
    )
    approval = delivery.payload["approval"]
    assert approval["url"].endswith(f"/ops/#request-{asked['id']}") and approval["incident"] == incident.reference
    assert approval["dry_run"] == f"Dry run: would remove failed tasks [{failed.pk}]."
