"""A Celery worker's own /metrics (WORKER_METRICS_PORT): what its prefork pool processes count
(runs, steps) and the queue depths, scraped from the worker itself as Prometheus does on each
worker host."""

import os
import re
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from runbooks.models import RunbookRun
from tests.runbooks.conftest import (  # noqa: F401 - http_service and target are fixtures
    auto,
    free_port,
    http_service,
    make_runbook,
    purge_runbook_queue,
    start_worker_process,
    subprocess_database_url,
    target,
    wait_for,
)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


@pytest.fixture
def exporting_worker(transactional_db, tmp_path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
        "SECRET_KEY": settings.SECRET_KEY,
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "WORKER_METRICS_PORT": str(port),
    }
    command = [sys.executable, "-m", "celery", "-A", "opsportal", "worker", "-Q", "runbooks", "-c", "2"]
    command += ["--pool", "prefork", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    purge_runbook_queue()
    process = start_worker_process(command, env)
    yield f"http://127.0.0.1:{port}/metrics", process.lines
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    purge_runbook_queue()


def test_a_workers_exporter_serves_the_runs_and_steps_its_pool_ran(exporting_worker, target, responder):  # noqa: F811
    url, lines = exporting_worker
    before = scrape(url)
    assert sample(before, "runbook_runs_total", result="succeeded") is None  # nothing counted yet
    assert sample(before, "opsportal_queue_messages", queue="runbooks") == 0.0
    runbook = make_runbook(
        steps=[
            auto("http_check", {"path": "/health"}, title="API health"),
            auto("http_check", {"path": "/slow?ms=50"}),
        ],
        services=[target],
    )
    run = RunbookRun.start(runbook, by=responder)
    wait_for(lambda: RunbookRun.objects.get(pk=run.pk).state == "succeeded", timeout=60, message="the run to succeed")
    after = scrape(url)
    # Counted in the pool processes, served by the main process: the scrape sees them.
    assert sample(after, "runbook_runs_total", result="succeeded") == 1.0, after[:3000]
    assert sample(after, "runbook_step_duration_seconds_count", action="http_check") == 2.0
    assert sample(after, "opsportal_queue_messages", queue="runbooks") == 0.0
    assert all(sample(after, "opsportal_queue_messages", queue=q) is not None for q in settings.OPSPORTAL_QUEUES)
    assert "Traceback" not in "".join(lines)


def test_the_exporter_needs_a_multiprocess_directory():
    from tests.opsportal.test_settings import load_settings

    result = load_settings(WORKER_METRICS_PORT="9808", PROMETHEUS_MULTIPROC_DIR="")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "PROMETHEUS_MULTIPROC_DIR" in result.stderr
