"""Ops paths that queue a task, while the broker does not answer: both use the bounded publish
(opsportal.broker), and nothing is lost. An approval stands, says on the console and the incident's
timeline that it is not queued yet, and the sweep sends it once the broker answers; a requeue of
failed tasks that could not be queued is a 503 that leaves them waiting, and marks requeued only
those whose message is on the broker."""

import logging
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from kombu.exceptions import OperationalError

from ops import approvals
from ops.actions.queues import purge, waiting
from ops.choices import RequestState
from ops.models import ActionRequest, AuditRecord, FailedTask
from opsportal import broker
from opsportal.celery import app
from tests.ops.test_approvals import ask_remove, timeline

# Transactional: the on-commit publishes run inside the request, as they do in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue():
    """A queue of its own on the portal's broker, emptied afterwards (no worker consumes it)."""
    name = f"ops-test-{uuid.uuid4().hex[:8]}"
    yield name
    purge(app, name)


def failed_task(queue: str, n: int = 1) -> FailedTask:
    return FailedTask.objects.create(
        task_id=uuid.uuid4().hex, name="tests.ops.never_runs", queue=queue, args=[n], exception="E: bad"
    )


def failed_ids(api) -> list[int]:
    return [t["id"] for t in api.get("/api/ops/tasks?status=failed").json()["tasks"]]


def test_an_approval_while_the_broker_is_down_stands_and_the_sweep_sends_it(
    api_for, api2, incident, broker_down, monkeypatch, caplog
):
    broker_down.back()
    first, second = failed_task("celery", 1), failed_task("celery", 2)
    asked = [ask_remove(api_for("admin"), row, incident).json()["id"] for row in (first, second)]
    broker_down.down()

    for pk in asked:
        response = api2.post(f"/api/ops/requests/{pk}/approve", {}, format="json")
        assert response.status_code == 202 and response.json()["state"] == "approved"
    assert [r.state for r in ActionRequest.objects.order_by("id")] == ["approved", "approved"]
    entries = timeline(incident)
    assert f"(request #{asked[0]}) is approved but not queued yet: the broker did not answer" in entries[-3]
    assert f"(request #{asked[1]}) is approved but not queued yet: the broker did not answer" in entries[-1]

    caplog.clear()
    with time_machine.travel(timezone.now() + timedelta(minutes=3)), caplog.at_level(logging.WARNING):
        assert approvals.sweep()["resent"] == 0
    # The first failure stops the sweep: one publish waited out, not one per request.
    assert caplog.text.count("could not be queued") == 1

    broker_down.back()
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the worker's part, in-process
    with time_machine.travel(timezone.now() + timedelta(minutes=4)):
        assert approvals.sweep()["resent"] == 2
    assert [r.state for r in ActionRequest.objects.order_by("id")] == ["succeeded", "succeeded"]
    assert FailedTask.objects.filter(removed_at__isnull=False).count() == 2


def test_the_console_says_an_approval_is_not_queued_yet(client, api_for, admin2, broker_down):
    broker_down.back()
    pk = ask_remove(api_for("admin"), failed_task("celery")).json()["id"]
    broker_down.down()
    client.force_login(admin2)
    response = client.post(f"/ops/requests/{pk}/approve/")
    assert response.status_code == 200
    assert (
        f"Request #{pk} approved, but not queued yet: the broker did not answer; the sweep sends it to a worker "
        "once the broker answers." in response.content.decode()
    )
    assert ActionRequest.objects.get().state == RequestState.APPROVED


def test_a_requeue_while_the_broker_is_down_is_a_503_and_leaves_the_task_waiting(api_for, queue, broker_down, caplog):
    row = failed_task(queue)
    admin = api_for("admin")
    with caplog.at_level(logging.WARNING):
        response = admin.post("/api/ops/tasks/requeue", {"ids": [row.pk]}, format="json")
    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"The broker did not answer (OperationalError): nothing was requeued; failed task(s) {row.pk} still "
        "waiting; requeue them once it answers."
    )
    assert "s3cret" not in response.content.decode() and "s3cret" not in caplog.text
    row.refresh_from_db()
    assert row.requeued_at is None and row.requeued_as == "" and row.handled_by is None
    assert failed_ids(admin) == [row.pk]
    audit = AuditRecord.objects.get()
    assert audit.action == "retry_failed" and not audit.ok

    broker_down.back()
    assert waiting(app, queue) == 0
    again = admin.post("/api/ops/tasks/requeue", {"ids": [row.pk]}, format="json")
    assert again.status_code == 200 and again.json()["detail"].startswith("Requeued 1 task(s): tests.ops.never_runs")
    row.refresh_from_db()
    assert row.requeued_at is not None and failed_ids(admin) == []
    assert waiting(app, queue) == 1


def test_a_broker_lost_mid_requeue_marks_only_the_tasks_it_queued(api_for, queue, monkeypatch):
    first, second = failed_task(queue, 1), failed_task(queue, 2)
    real, sent = broker.send, []

    def lost_after_one(app, name, *args, **kwargs):
        if sent:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent.append(name)
        return real(app, name, *args, **kwargs)

    monkeypatch.setattr(broker, "send", lost_after_one)
    admin = api_for("admin")
    response = admin.post("/api/ops/tasks/requeue", {"ids": [first.pk, second.pk]}, format="json")
    assert response.status_code == 503
    assert (
        f"requeued {first.pk}; failed task(s) {second.pk} still waiting; requeue them once it answers."
        in response.json()["detail"]
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.requeued_at is not None and first.requeued_as
    assert second.requeued_at is None
    assert failed_ids(admin) == [second.pk]
    assert waiting(app, queue) == 1  # the first one's message, and only it


def test_the_console_and_the_admin_say_the_requeue_did_not_happen(client, admin_user, queue, broker_down):
    row = failed_task(queue)
    client.force_login(admin_user)
    card = client.post(f"/ops/tasks/{row.pk}/requeue/")
    assert card.status_code == 503
    assert "The broker did not answer (OperationalError): nothing was requeued" in card.content.decode()
    response = client.post("/admin/ops/failedtask/", {"action": "requeue", "_selected_action": [row.pk]}, follow=True)
    assert "The broker did not answer (OperationalError): nothing was requeued" in response.content.decode()
    row.refresh_from_db()
    assert row.requeued_at is None
