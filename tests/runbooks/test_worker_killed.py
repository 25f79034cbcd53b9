"""A real worker process is killed (SIGKILL) in the middle of a step; the reaper closes the step and
the run moves on instead of staying "running" forever."""

import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings

from incidents.models import TimelineEvent
from runbooks.models import RunbookRun
from runbooks.tasks import reap_stuck_steps
from tests.factories import IncidentFactory, UserFactory
from tests.runbooks.conftest import (
    auto,
    make_runbook,
    manual,
    purge_runbook_queue,
    start_worker_process,
    subprocess_database_url,
    wait_for,
)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def doomed_worker() -> subprocess.Popen:
    """`celery worker` as production runs it (prefork pool), on the test database and broker."""
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "INFO",
    }
    command = [sys.executable, "-m", "celery", "-A", "opsportal", "worker", "-Q", "runbooks,first_look", "-c", "1"]
    command += ["--pool", "prefork", "-n", f"{name}@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    process = start_worker_process(command, env)
    process.worker_name = name
    return process


@pytest.fixture
def worker_processes(transactional_db):
    """Starts worker processes on demand; kills those still running at the end."""
    purge_runbook_queue()
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        started.append(doomed_worker())
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    purge_runbook_queue()


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL


def test_a_change_step_whose_worker_is_killed_is_failed_by_the_reaper(worker_processes, target):
    worker_process = worker_processes()
    alice = UserFactory(username="alice", role="responder")
    incident = IncidentFactory(title="Checkout hangs", created_by=alice)
    hangs = auto("http_check", {"path": "/hang"}, title="Endpoint that hangs", timeout=20, safety="change")
    runbook = make_runbook(steps=[hangs, manual("Check by hand")], services=[target])
    run = RunbookRun.start(runbook, by=alice, incident=incident)
    run.approve_step(run.step_runs.get(order=1).pk, by=alice)
    step = wait_for(
        lambda: run.step_runs.filter(order=1, state="running").first(), timeout=60, message="the worker to start step 1"
    )
    assert step.worker.startswith(worker_process.worker_name)

    kill(worker_process)

    # Nobody will finish the step; until its hard time limit has passed the reaper leaves it alone.
    assert reap_stuck_steps() == 0
    assert RunbookRun.objects.get(pk=run.pk).state == "running"
    with time_machine.travel(step.deadline_at + timedelta(seconds=1)):
        assert reap_stuck_steps() == 1
    step.refresh_from_db()
    run.refresh_from_db()
    # It may have changed something before the worker died: it is not run again by itself.
    assert step.state == "failed" and step.finished_at is not None and step.attempts == 1
    assert f"No result from worker {step.worker} within the step's hard time limit" in step.result["error"]
    assert run.state == "waiting_input"  # the run moved on to the manual step
    last = TimelineEvent.objects.filter(incident=incident, kind="runbook").order_by("-id").first()
    assert "Endpoint that hangs** failed: No result from worker" in last.body


def test_a_read_only_step_whose_worker_is_killed_runs_once_more_on_another_worker(worker_processes, target):
    doomed = worker_processes()
    alice = UserFactory(username="alice", role="responder")
    incident = IncidentFactory(title="Checkout hangs", created_by=alice)
    hangs = auto("http_check", {"path": f"/hang-once?key={uuid.uuid4().hex}"}, title="Endpoint that hangs", timeout=20)
    runbook = make_runbook(steps=[hangs, manual("Check by hand")], services=[target])
    run = RunbookRun.start(runbook, by=alice, incident=incident)
    step = wait_for(
        lambda: run.step_runs.filter(order=1, state="running").first(), timeout=60, message="the worker to start step 1"
    )
    kill(doomed)
    with time_machine.travel(step.deadline_at + timedelta(seconds=1)):
        assert reap_stuck_steps() == 1
    step.refresh_from_db()
    assert step.state == "pending" and step.attempts == 1  # attempt 2 is queued
    survivor = worker_processes()
    step = wait_for(
        lambda: run.step_runs.filter(order=1, state="succeeded").first(),
        timeout=60,
        message=f"the second attempt; worker log:\n{''.join(survivor.lines[-30:])}",
    )
    run.refresh_from_db()
    assert step.attempts == 2 and step.worker.startswith(survivor.worker_name) and run.state == "waiting_input"
    assert f"No result from worker {doomed.worker_name}" in step.output
    lines = list(
        TimelineEvent.objects.filter(incident=incident, kind="runbook").order_by("id").values_list("body", flat=True)
    )
    assert "was lost mid-step; the read-only step runs once more." in lines[-2]
    assert "**Endpoint that hangs** succeeded: OK" in lines[-1]
