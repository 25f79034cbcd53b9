"""runbook_runs_total and runbook_step_duration_seconds, read from /metrics the way Prometheus does,
after runs executed by a real Celery worker (a thread sharing this process' registry) and after
runs people finish by ticking steps."""

import pytest
from django.test import Client

from runbooks.models import RunbookRun
from tests.factories import ServiceFactory
from tests.runbooks.conftest import auto, make_runbook, manual, wait_for


@pytest.fixture
def enabled(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_GUARD = "none"
    return settings


def scrape() -> str:
    response = Client().get("/metrics")
    assert response.status_code == 200, response.content
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in the exposition text; 0 when it has no sample yet."""
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    prefix = f"{name}{{{selector}}} "
    return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


def runs(result: str, text: str | None = None) -> float:
    return sample(text or scrape(), "runbook_runs_total", result=result)


def steps_timed(action: str, text: str | None = None) -> float:
    return sample(text or scrape(), "runbook_step_duration_seconds_count", action=action)


def seconds_timed(action: str, text: str | None = None) -> float:
    return sample(text or scrape(), "runbook_step_duration_seconds_sum", action=action)


# --- through a real worker ---------------------------------------------------------------------


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_run_through_a_real_worker_is_counted_and_its_steps_timed(celery_worker, enabled, target, responder):
    runbook = make_runbook(
        steps=[
            auto("http_check", {"path": "/health"}, title="API health"),
            auto("http_check", {"path": "/slow?ms=300"}, title="Slow endpoint"),
            auto("host_check", {"check": "memory", "warn_percent": 100, "critical_percent": 100}, title="Memory"),
        ],
        services=[target],
    )
    before = scrape()
    run = RunbookRun.start(runbook, by=responder)
    wait_for(lambda: RunbookRun.objects.get(pk=run.pk).state == "succeeded", message="the run to succeed")
    after = scrape()
    assert runs("succeeded", after) == runs("succeeded", before) + 1
    assert steps_timed("http_check", after) == steps_timed("http_check", before) + 2
    assert steps_timed("host_check", after) == steps_timed("host_check", before) + 1
    assert seconds_timed("http_check", after) - seconds_timed("http_check", before) >= 0.3
    assert runs("failed", after) == runs("failed", before)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_runs_that_fail_or_time_out_on_a_worker_are_counted_by_result(
    celery_worker, enabled, target, responder, closed_port_url
):
    gone = ServiceFactory(slug="gone", base_url=closed_port_url)
    failing = make_runbook("Gone", steps=[auto("http_check", {"path": "/health"})], services=[gone])
    slow = make_runbook("Slow", steps=[auto("http_check", {"path": "/slow?ms=3000"}, timeout=1)], services=[target])
    for runbook, result in ((failing, "failed"), (slow, "timed_out")):
        before = scrape()
        run = RunbookRun.start(runbook, by=responder)
        wait_for(lambda run=run, result=result: RunbookRun.objects.get(pk=run.pk).state == result, message=result)
        assert runs(result) == runs(result, before) + 1
        # Only the attempt that gave the step its result is timed, not the retried ones.
        assert steps_timed("http_check") == steps_timed("http_check", before) + 1


# --- finished by people ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_manual_run_finished_by_ticking_steps_is_counted(enabled, api, runbook_with_manual_steps):
    before = scrape()
    run = api.post("/api/runs/", {"runbook": runbook_with_manual_steps.pk}, format="json").json()
    first, second = (s["id"] for s in run["steps"])
    api.post(f"/api/runs/{run['id']}/steps/{first}/complete/", {}, format="json")
    assert runs("succeeded") == runs("succeeded", before)  # not finished yet
    finished = api.post(f"/api/runs/{run['id']}/steps/{second}/complete/", {"skip": True}, format="json")
    assert finished.status_code == 200 and finished.json()["state"] == "succeeded"
    after = scrape()
    assert runs("succeeded", after) == runs("succeeded", before) + 1
    assert steps_timed("http_check", after) == steps_timed("http_check", before)  # manual steps are not timed


@pytest.mark.django_db
def test_a_cancelled_run_is_counted(enabled, api, runbook_with_manual_steps):
    before = scrape()
    run = api.post("/api/runs/", {"runbook": runbook_with_manual_steps.pk}, format="json").json()
    cancelled = api.post(f"/api/runs/{run['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert runs("cancelled") == runs("cancelled", before) + 1


@pytest.fixture
def runbook_with_manual_steps(db):
    return make_runbook("Manual checks", steps=[manual("Look at the dashboard"), manual("Tell the team")])
