"""The worker survives Redis going away while a task is in flight (opsportal.broker.RedisChannel):
a real prefork worker on a private Redis that the test restarts."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from opsportal.celery import app
from tests.opsportal.outage_tasks import sleep_then_mark
from tests.outages import PrivateRedis
from tests.runbooks.conftest import wait_for

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to start a private one")


@pytest.fixture
def private_redis():
    server = PrivateRedis(persist=True).start()
    yield server
    server.close()


@pytest.fixture
def worker(private_redis):
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": private_redis.url(),
        "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
        "SECRET_KEY": settings.SECRET_KEY,
    }
    # Two processes, as in production: with one busy, the other keeps the consumer waiting in BRPOP,
    # which is where Redis going away used to kill the worker (with -c 1 the consumer is idle).
    command = [sys.executable, "-m", "celery", "-A", "opsportal", "worker", "--pool", "prefork", "-c", "2"]
    command += ["-Q", queue, "-n", f"{queue}@%h", "--include", "tests.opsportal.outage_tasks", "--loglevel", "INFO"]
    process = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    process.log, process.queue = [], queue
    threading.Thread(target=lambda: process.log.extend(process.stdout), daemon=True).start()
    wait_for(lambda: "ready." in "".join(process.log) or process.poll() is not None, timeout=60, message="the worker")
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def send(private_redis, worker, path: Path, seconds: float) -> None:
    with app.connection_for_write(private_redis.url()) as connection:
        sleep_then_mark.apply_async((str(path), seconds), queue=worker.queue, connection=connection)


def test_the_worker_survives_a_redis_restart_with_a_task_in_flight(private_redis, worker, tmp_path):
    def alive() -> bool:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode}:\n" + "".join(worker.log[-60:]))
        return True

    in_flight, after = tmp_path / "in-flight", tmp_path / "after"
    send(private_redis, worker, in_flight, seconds=6)
    wait_for(lambda: alive() and Path(f"{in_flight}.started").exists(), timeout=60, message="the task to start")

    private_redis.stop()  # the worker's BRPOP and the in-flight task's message lose their broker
    wait_for(lambda: alive() and "Connection to broker lost" in "".join(worker.log), message="the worker to notice")
    private_redis.start()

    wait_for(lambda: alive() and in_flight.exists(), timeout=60, message="the in-flight task to complete")
    send(private_redis, worker, after, seconds=0)  # consumed only if the worker reconnected
    wait_for(lambda: alive() and after.exists(), timeout=60, message="a task sent after the restart to run")
    assert "Unrecoverable error" not in "".join(worker.log)
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(60) == 0, "".join(worker.log[-40:])
