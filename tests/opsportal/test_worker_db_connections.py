"""A worker keeps its PostgreSQL connection from task to task, as a web process keeps its own
across requests (CONN_MAX_AGE), instead of Celery's default of a new connection around every task
(settings.CELERY_DB_REUSE_MAX); one the database dropped is replaced before the next task uses it.
A real prefork worker process on the test database."""

import os
import signal
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.opsportal.outage_tasks import note_backend_pid
from tests.runbooks.conftest import start_worker_process, subprocess_database_url, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    queue = f"dbconn-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "INFO",  # the worker says " ready." at INFO
    }
    command = [sys.executable, "-m", "celery", "-A", "opsportal", "worker", "--pool", "prefork", "-c", "1"]
    command += ["-Q", queue, "-n", f"{queue}@%h", "--include", "tests.opsportal.outage_tasks"]
    command += ["--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    process = start_worker_process(command, env)
    process.queue = queue
    yield process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def run_tasks(worker, path: Path, count: int) -> list[int]:
    before = len(pids(path))
    for _ in range(count):
        note_backend_pid.apply_async((str(path),), queue=worker.queue)
    wait_for(
        lambda: worker.poll() is None and len(pids(path)) >= before + count, timeout=60, message="the tasks to run"
    )
    return pids(path)[before:]


def test_a_worker_keeps_its_database_connection_across_tasks_and_replaces_a_dropped_one(worker, tmp_path):
    path = tmp_path / "pids"
    first = run_tasks(worker, path, 4)
    assert len(set(first)) == 1, f"a new connection per task: {first}"

    # The database drops it (a restart, an idle timeout, an administrator): the next task still runs.
    with psycopg.connect(subprocess_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first[0]])
    after = run_tasks(worker, path, 2)
    assert after[0] != first[0] and len(set(after)) == 1
