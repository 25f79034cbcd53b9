"""Several hosts, as production runs them: two web servers (gunicorn, different ports) and two Celery
workers (different names, queues split by kind of work) sharing only PostgreSQL and the broker.
An alert storm goes through both web servers (every group to each, some twice); a worker is killed
with SIGKILL in the middle and started again. CI runs this on Redis and again on RabbitMQ."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings

from incidents.models import AlertDelivery, Incident, Integration
from runbooks.models import RunbookRun, StepRun
from runbooks.tasks import reap_stuck_steps
from tests.factories import ServiceFactory
from tests.incidents.alerting.payloads import alert, alertmanager
from tests.runbooks.conftest import auto, free_port, make_runbook, purge_runbook_queue, subprocess_database_url

pytestmark = [pytest.mark.celery_worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

GROUPS = 40
TWICE = 10  # groups each server receives a second time
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
# The split recommended in README "Deploying": the response clock (intake) with maintenance on one
# kind of worker, the checks (first looks, runbook steps) on another.
WORKER_QUEUES = {"a": "intake,celery", "b": "first_look,runbooks"}


def wait_until(condition, *, timeout: float, message: str, processes=()):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        for process in processes:
            if process.poll() is not None:
                pytest.fail(
                    f"{process.label} exited ({process.returncode}) while waiting for {message}:\n{process.tail()}"
                )
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {message}")
        time.sleep(0.1)
    return value


class Cluster:
    """Processes started on the test database and broker, each in its own process group."""

    def __init__(self):
        self.processes: list[subprocess.Popen] = []
        self.started = 0
        self.env = {
            **os.environ,
            "DATABASE_URL": subprocess_database_url(),
            "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
            "SECRET_KEY": settings.SECRET_KEY,
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "INFO",  # the worker says " ready." at INFO
            # Redis hands a killed worker's unacked messages to another consumer after this (RabbitMQ
            # does it when the connection drops); production keeps the hour of settings.py.
            "CELERY_VISIBILITY_TIMEOUT": "10",
        }

    def start(self, label: str, command: list[str], ready: str) -> subprocess.Popen:
        """Starts a process without waiting for it (`wait_ready`): the processes boot side by side."""
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        process.label, process.lines, process.ready = label, [], threading.Event()
        process.tail = lambda: "".join(process.lines[-40:])

        def read():
            for line in process.stdout:
                process.lines.append(line)
                if ready in line:
                    process.ready.set()

        threading.Thread(target=read, daemon=True).start()
        self.processes.append(process)
        return process

    def web(self, label: str) -> subprocess.Popen:
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "opsportal.wsgi", "--config", "gunicorn.conf.py"]
        command += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread", "--threads", "4"]
        process = self.start(label, command, ready="")
        process.url = f"http://127.0.0.1:{port}"
        process.wait_ready = lambda: wait_until(
            lambda: _answers(process.url + "/health"), timeout=60, message=f"{label} to answer", processes=[process]
        )
        return process

    def worker(self, name: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "celery", "-A", "opsportal", "worker", "-Q", WORKER_QUEUES[name], "-c", "2"]
        self.started += 1  # a restarted worker gets a name of its own: its steps can be told apart
        node = f"{name}-{self.started}-{os.getpid()}"
        command += ["-n", f"{node}@%h", "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
        process = self.start(f"worker {node}", command, ready=" ready.")
        process.name = f"{node}@"

        def wait_ready():
            if not process.ready.wait(60):
                pytest.fail(f"worker {name} did not start:\n{process.tail()}")

        process.wait_ready = wait_ready
        return process

    @staticmethod
    def wait_ready(*processes: subprocess.Popen) -> None:
        for process in processes:
            process.wait_ready()

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # the main process and its pool children, mid-task
        process.wait(30)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def post(url: str, body: dict) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


@pytest.fixture
def cluster(transactional_db):
    queues = settings.OPSPORTAL_QUEUES
    purge_runbook_queue(*queues)
    cluster = Cluster()
    yield cluster
    cluster.stop()
    purge_runbook_queue(*queues)


@pytest.mark.timeout(600)  # six processes start on a machine that may be shared
def test_a_storm_through_two_web_servers_and_two_workers_one_of_them_killed(cluster):
    web_a, web_b = (process.url for process in [cluster.web("web a"), cluster.web("web b")])
    worker_a, worker_b = cluster.worker("a"), cluster.worker("b")
    service = ServiceFactory(name="Cosmetica API", slug="cosmetica-api", base_url=web_a)
    make_runbook(
        "Storm first look",
        steps=[
            auto("http_check", {"path": "/health"}, title="Liveness"),
            auto("http_check", {"path": "/ready"}, title="Readiness"),  # the database, cache and broker, from web a
            auto("http_check", {"path": "/health"}, title="Liveness again"),
        ],
        services=[service],
        alert_names=["StormAlert"],
    )
    _, token = Integration.create(name="alertmanager", kind="alertmanager")
    path = f"/api/integrations/alertmanager/{token}/"
    bodies = [
        alertmanager(alert("StormAlert", instance=f"api-{g}:8000", group=f"g{g}"), group=f"StormAlert-{g}")
        for g in range(GROUPS)
    ]
    sends = [(web, body) for body in bodies for web in (web_a, web_b)]
    sends += [(web, body) for body in bodies[:TWICE] for web in (web_b, web_a)]

    cluster.wait_ready(*cluster.processes)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda s: post(s[0] + path, s[1]), sends))
    assert statuses == [202] * len(sends)

    # Mid-storm: some first looks are done, most are not; worker b dies with steps in hand.
    wait_until(
        lambda: RunbookRun.objects.filter(first_look=True, state__in=FINISHED).count() >= 3,
        timeout=120,
        message="the first first looks to finish",
        processes=[worker_a, worker_b],
    )
    finished_at_kill = RunbookRun.objects.filter(first_look=True, state__in=FINISHED).count()
    killed = worker_b.name
    cluster.kill(worker_b)
    assert finished_at_kill < GROUPS, "the storm was over before the kill: nothing was tested"
    worker_b = cluster.worker("b")  # the same queues, started again as an orchestrator would
    cluster.wait_ready(worker_b)

    wait_until(
        lambda: not AlertDelivery.objects.filter(state="pending").exists(),
        timeout=180,
        message="every delivery to be applied",
        processes=[worker_a, worker_b],
    )
    # Every queued step is taken by a worker (a step queued but never claimed would be a lost message).
    queued = StepRun.objects.filter(run__first_look=True, state="pending", enqueued_at__isnull=False)
    wait_until(
        lambda: RunbookRun.objects.filter(first_look=True).count() == GROUPS and not queued.exists(),
        timeout=240,
        message="every queued first-look step to be taken by a worker",
        processes=[worker_a, worker_b],
    )
    # A step the killed worker was running has nobody to finish it: the reaper closes it after its
    # hard time limit, as on one host, and its run goes on.
    running = StepRun.objects.filter(run__first_look=True, state="running")
    stuck = [s for s in running if s.worker.startswith(killed)]
    wait_until(
        lambda: not running.exclude(pk__in=[s.pk for s in stuck]).exists(),
        timeout=120,
        message="the live steps to finish",
    )
    if stuck:
        with time_machine.travel(max(s.deadline_at for s in stuck) + timedelta(seconds=1)):
            assert reap_stuck_steps() == len(stuck)
    wait_until(
        lambda: RunbookRun.objects.filter(first_look=True, state__in=FINISHED).count() == GROUPS,
        timeout=240,
        message="every first look to finish",
        processes=[worker_a, worker_b],
    )

    # Exactly one incident per group, one first look per incident, every notification applied.
    assert Incident.objects.count() == GROUPS
    assert sorted(Incident.objects.values_list("alerts__group__group_key", flat=True)) == sorted(
        b["groupKey"] for b in bodies
    )
    assert AlertDelivery.objects.count() == GROUPS  # a notification sent again is stored once
    assert set(AlertDelivery.objects.values_list("state", flat=True)) == {"processed"}
    runs = RunbookRun.objects.filter(first_look=True)
    assert sorted(runs.values_list("incident_id", flat=True)) == sorted(Incident.objects.values_list("pk", flat=True))
    # No step ran twice, but a read-only check the kill interrupted: the reaper runs it once more
    # (attempt 2) instead of failing it; every other step was claimed by its one attempt.
    steps = StepRun.objects.filter(run__first_look=True)
    assert steps.count() == GROUPS * 3
    interrupted = {s.pk for s in stuck}
    assert {s.pk: s.attempts for s in steps} == {s.pk: 2 if s.pk in interrupted else 1 for s in steps}
    workers = {w.split("@")[0].split("-")[0] for w in steps.values_list("worker", flat=True)}
    assert workers == {"b"}  # first looks ran only where their queue is consumed
    assert not steps.exclude(state="succeeded").exists(), [
        (s.pk, s.state, s.result) for s in steps.exclude(state="succeeded")
    ]
