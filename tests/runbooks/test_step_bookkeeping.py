"""What one step costs the database, and how a first look queues its checks (no worker: the task
is called as the worker calls it)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runbooks.models import RunbookRun, StepRun
from runbooks.tasks import run_step
from tests.factories import IncidentFactory
from tests.runbooks.conftest import auto, make_runbook, manual

pytestmark = pytest.mark.django_db

HEALTH = auto("http_check", {"path": "/health"}, title="Health")


def published(callbacks) -> int:
    """How many step messages the captured on-commit callbacks would publish."""
    return sum(c.__qualname__.startswith("publish_step") for c in callbacks)


def statements(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries]


def test_one_automated_step_costs_five_statements_and_one_timeline_entry(
    responder, target, django_capture_on_commit_callbacks
):
    """Before: 14 statements (18 with the test transaction's savepoints), four of them row locks, and
    two timeline entries per step. Now: read the step with all it needs, claim it with a conditional
    UPDATE, then in one transaction store the result, write one timeline entry and release the next
    step; no row is locked with SELECT ... FOR UPDATE."""
    incident = IncidentFactory(services=[target])
    run = RunbookRun.start(
        make_runbook(steps=[HEALTH, HEALTH, HEALTH], services=[target]), by=responder, incident=incident
    )
    first, second, third = run.step_runs.order_by("order")
    with django_capture_on_commit_callbacks(execute=False):
        assert run_step(first.pk, 1) == "succeeded"
    with django_capture_on_commit_callbacks(execute=False) as queued, CaptureQueriesContext(connection) as ctx:
        assert run_step(second.pk, 1) == "succeeded"
    sql = [s for s in statements(ctx) if "SAVEPOINT" not in s]
    assert len(sql) == 5, "\n".join(sql)
    assert len(ctx.captured_queries) == 7  # and the savepoint around the result's transaction
    assert not any("FOR UPDATE" in s for s in sql)
    assert sum(s.startswith('INSERT INTO "incidents_timelineevent"') for s in sql) == 1
    assert published(queued) == 1  # the third step, published after commit
    third.refresh_from_db()
    assert third.enqueued_at is not None and third.state == "pending"


def test_a_read_only_step_loads_neither_the_incident_nor_the_people(
    responder, target, django_capture_on_commit_callbacks
):
    """The worker's read joins the step, the run and their targets only: the incident (its id is
    enough for the timeline entry), the runbook and the starter or approver (an action that changes
    something loads who it runs for, an audit record who did it) stay out of a read-only step."""
    run = RunbookRun.start(
        make_runbook(steps=[HEALTH, HEALTH], services=[target]), by=responder, incident=IncidentFactory()
    )
    first = run.step_runs.get(order=1)
    with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as ctx:
        assert run_step(first.pk, 1) == "succeeded"
    sql = [s for s in statements(ctx) if "SAVEPOINT" not in s]
    assert len(sql) == 6, "\n".join(sql)  # the first step also moves the run from queued to running
    assert not [s for s in sql if 'FROM "incidents_incident"' in s or 'FROM "auth_user"' in s]
    assert not [s for s in sql if 'JOIN "incidents_incident"' in s or 'JOIN "auth_user"' in s]
    assert run.incident.events.filter(kind="runbook", body__contains="Step 1/2").count() == 1


def test_a_step_before_a_person_s_step_leaves_the_decision_to_the_locked_run(responder, target):
    run = RunbookRun.start(make_runbook(steps=[HEALTH, manual("Look")], services=[target]), by=responder)
    assert run_step(run.step_runs.get(order=1).pk, 1) == "succeeded"
    run.refresh_from_db()
    assert run.state == "waiting_input"


def first_look_of(target, count: int, alert: str = "CheckoutDown"):
    checks = [auto("http_check", {"path": "/health"}, title=f"Check {n}") for n in range(1, count + 1)]
    runbook = make_runbook(f"{alert} checks", steps=checks, services=[target], alert_names=[alert])
    return RunbookRun.start(runbook, by=None, incident=IncidentFactory(services=[target]), first_look=alert)


def test_a_first_look_queues_its_checks_side_by_side_up_to_the_cap(
    target, settings, django_capture_on_commit_callbacks
):
    settings.RUNBOOK_FIRST_LOOK_CONCURRENCY = 3
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = first_look_of(target, 5)
    assert published(queued) == 3 and run.concurrency == 3
    steps = list(run.step_runs.order_by("order"))
    assert [s.enqueued_at is not None for s in steps] == [True, True, True, False, False]
    # Any check finishing releases the one `concurrency` places after it.
    with django_capture_on_commit_callbacks(execute=False) as released:
        assert run_step(steps[1].pk, 1) == "succeeded"
    assert published(released) == 1
    assert StepRun.objects.get(pk=steps[4].pk).enqueued_at is not None
    assert StepRun.objects.get(pk=steps[3].pk).enqueued_at is None
    for step in (steps[0], steps[2], steps[4]):
        with django_capture_on_commit_callbacks(execute=False):
            run_step(step.pk, 1)
    run.refresh_from_db()
    assert run.state == "running"  # step 4 is still open
    with django_capture_on_commit_callbacks(execute=False):
        assert run_step(steps[3].pk, 1) == "succeeded"
    # The last check to finish closes the run and writes its summary once.
    run.refresh_from_db()
    assert run.state == "succeeded" and run.summary == "5 succeeded" and run.finished_at
    lines = list(run.incident.events.filter(kind="runbook").order_by("id").values_list("body", flat=True))
    assert len(lines) == 1 + 5 + 1 and lines[-1].endswith("succeeded: 5 succeeded.")


def test_first_look_checks_are_published_on_the_first_look_queue(target, django_capture_on_commit_callbacks):
    from opsportal.celery import app
    from tests.runbooks.conftest import purge_runbook_queue

    purge_runbook_queue("first_look", "runbooks")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first_look_of(target, 2)
        with app.connection_for_write() as conn:
            sizes = {q: conn.default_channel.queue_declare(q).message_count for q in ("first_look", "runbooks")}
        assert sizes == {"first_look": 2, "runbooks": 0}
    finally:
        purge_runbook_queue("first_look", "runbooks")
