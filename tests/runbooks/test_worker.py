"""Runs through a real Celery worker (a thread) consuming the real broker: Redis in CI, the kombu
filesystem transport without REDIS_URL. The worker-killed case is in test_worker_killed.py."""

import pytest

from incidents.models import TimelineEvent
from runbooks.models import RunbookRun
from tests.factories import IncidentFactory, ServiceFactory, UserFactory
from tests.runbooks.conftest import auto, make_runbook, manual, wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def run_state(run, *states):
    def check():
        current = RunbookRun.objects.get(pk=run.pk)
        return current if current.state in states else None

    return wait_for(check, message=f"run #{run.pk} to be {'/'.join(states)}")


def step_states(run) -> list[str]:
    return list(run.step_runs.order_by("order").values_list("state", flat=True))


@pytest.fixture
def people(db):
    return UserFactory(username="alice", role="responder"), UserFactory(username="bob", role="responder")


def test_a_run_goes_end_to_end_through_a_real_worker(celery_worker, people, target):
    alice, bob = people
    incident = IncidentFactory(title="Checkout failing", created_by=alice)
    runbook = make_runbook(
        steps=[
            auto("http_check", {"path": "/health"}, title="API health"),
            auto("host_check", {"check": "memory", "warn_percent": 100, "critical_percent": 100}, title="Memory"),
            manual("Look at the error dashboard"),
            auto("http_check", {"path": "/ready"}, title="Readiness"),
        ],
        services=[target],
    )
    run = RunbookRun.start(runbook, by=alice, incident=incident)
    run = run_state(run, "waiting_input")
    assert step_states(run) == ["succeeded", "succeeded", "pending", "pending"]
    run.complete_step(run.step_runs.get(order=3).pk, by=bob, note="dashboard calm")
    run = run_state(run, "succeeded", "failed")
    assert run.state == "succeeded" and step_states(run) == ["succeeded"] * 4
    readiness = run.step_runs.get(order=4)
    assert readiness.result["status"] == "critical" and readiness.result["figures"]["status_code"] == 503
    assert run.summary == "4 succeeded; 1 finding to look at"
    assert run.step_runs.get(order=1).worker.startswith("gen") or run.step_runs.get(order=1).worker
    bodies = list(TimelineEvent.objects.filter(incident=incident, kind="runbook").values_list("body", flat=True))
    assert len(bodies) == 1 + 2 + 1 + 1 + 1  # start, 2 automated steps (one entry each), tick, 1 automated, finish
    assert bodies[-1].startswith("Runbook **Checkout checks** [run #") and bodies[-1].endswith(
        "succeeded: 4 succeeded; 1 finding to look at."
    )


@pytest.mark.postgres
def test_postgres_and_redis_steps_run_against_the_ci_services(celery_worker, people, redis_url):
    from tests.runbooks.conftest import postgres_dsn

    service = ServiceFactory(slug="ci", database_url=postgres_dsn(), redis_url=redis_url)
    runbook = make_runbook(
        steps=[
            auto("postgres_query", {"check": "select_1"}, title="Database answers"),
            auto("postgres_query", {"check": "connections_by_state"}, title="Connections"),
            auto("postgres_query", {"sql": "SELECT count(*) AS runbooks FROM runbooks_runbook"}, title="Count"),
            auto("redis_check", {"check": "ping"}, title="Redis answers"),
            auto("redis_check", {"check": "info_memory"}, title="Redis memory"),
        ],
        services=[service],
    )
    run = run_state(RunbookRun.start(runbook, by=people[0]), "succeeded", "failed")
    assert step_states(run) == ["succeeded"] * 5
    count = run.step_runs.get(order=3)
    assert count.result["rows"] == [[1]] and "runbooks" in count.output


def test_a_step_that_exceeds_its_timeout_times_out_and_the_run_goes_on(celery_worker, people, target):
    runbook = make_runbook(
        steps=[
            auto("http_check", {"path": "/slow?ms=5000"}, title="Slow endpoint", timeout=1),
            auto("http_check", {"path": "/health"}, title="Health"),
        ],
        services=[target],
    )
    run = run_state(RunbookRun.start(runbook, by=people[0]), "timed_out", "succeeded", "failed")
    assert run.state == "timed_out" and step_states(run) == ["timed_out", "succeeded"]
    assert "within 1 s" in run.step_runs.get(order=1).result["error"]


def test_cancel_stops_the_run_before_its_next_step(celery_worker, people, target, client):
    alice, bob = people
    runbook = make_runbook(
        steps=[
            auto("http_check", {"path": "/slow?ms=1500"}, title="Slow", timeout=5),
            auto("http_check", {"path": "/health"}, title="Never runs"),
            manual("Nor this"),
        ],
        services=[target],
    )
    run = RunbookRun.start(runbook, by=alice)
    wait_for(lambda: run.step_runs.get(order=1).state == "running", message="step 1 to start")
    client.force_login(bob)
    response = client.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    run = run_state(run, "cancelled")
    assert step_states(run) == ["succeeded", "cancelled", "cancelled"]
    assert run.step_runs.get(order=2).attempts == 0


def test_a_dangerous_step_runs_only_after_another_user_approves(celery_worker, people, target, client):
    alice, bob = people
    runbook = make_runbook(
        steps=[auto("http_check", {"path": "/health"}, title="Risky check", safety="dangerous")], services=[target]
    )
    client.force_login(alice)
    created = client.post(
        "/api/runs/", {"runbook": runbook.pk, "incident": None, "target": None}, content_type="application/json"
    )
    assert created.status_code == 201, created.json()
    run = RunbookRun.objects.get(pk=created.json()["id"])
    step = run.step_runs.get()
    assert created.json()["state"] == "waiting_approval" and created.json()["steps"][0]["waiting_for"] == "approval"
    own = client.post(f"/api/runs/{run.pk}/steps/{step.pk}/approve/", {}, content_type="application/json")
    assert own.status_code == 403 and "another responder has to" in own.json()["detail"]
    assert run_state(run, "waiting_approval").step_runs.get().attempts == 0
    client.force_login(bob)
    approved = client.post(
        f"/api/runs/{run.pk}/steps/{step.pk}/approve/", {"note": "go"}, content_type="application/json"
    )
    assert approved.status_code == 200
    run = run_state(run, "succeeded")
    step.refresh_from_db()
    assert step.approved_by == bob and step.result["status"] == "ok"


def test_an_unreachable_target_is_retried_then_fails(celery_worker, people, closed_port_url):
    service = ServiceFactory(slug="gone", base_url=closed_port_url)
    runbook = make_runbook(steps=[auto("http_check", {"path": "/health"}, title="Health")], services=[service])
    run = run_state(RunbookRun.start(runbook, by=people[0]), "failed")
    step = run.step_runs.get()
    assert step.state == "failed" and step.attempts == 3
    assert step.output.count("retrying in 0 s") == 2 and "Could not connect to" in step.result["error"]
