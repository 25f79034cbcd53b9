"""Beat rides out a database outage longer than its full re-read interval (opsportal/beat.py):
a real `celery beat` on a private PostgreSQL that the test stops and starts again."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from opsportal.celery import app
from tests.outages import PG_BIN, PrivatePostgres
from tests.runbooks.conftest import wait_for

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or (os.geteuid() == 0 and not shutil.which("runuser")),
    reason="needs PostgreSQL's server binaries (PG_BIN) to start a private server",
)

SEED = """
from django_celery_beat.models import IntervalSchedule, PeriodicTask
every, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
PeriodicTask.objects.create(name={name!r}, task="tests.beat.tick", interval=every, queue={queue!r})
"""


def manage(database_url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": settings.SECRET_KEY}
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, check=True, capture_output=True
    )


def drain(queue_name: str) -> dict[str, int]:
    """Takes every message off `queue_name`: how many beat sent, by periodic task name."""
    sent: dict[str, int] = {}
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(queue_name)
        try:
            while True:
                message = queue.get(block=True, timeout=0.3)
                message.ack()
                name = message.headers.get("periodic_task_name")
                sent[name] = sent.get(name, 0) + 1
        except queue.Empty:
            return sent
        finally:
            queue.close()


@pytest.fixture
def private_postgres():
    server = PrivatePostgres().start()
    yield server
    server.close()


@pytest.fixture
def beat(private_postgres):
    url = private_postgres.create_database("beat")
    manage(url, "migrate", "django_celery_beat", "--noinput")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "OPSPORTAL_VAR_DIR": str(Path(settings.VAR_DIR).resolve()),
        "SECRET_KEY": settings.SECRET_KEY,
        "BEAT_RESYNC_SECONDS": "1",  # the outage below overlaps several full re-reads
        "BEAT_DB_RETRY_MAX": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "opsportal", "beat", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    process.log = []
    process.url = url
    threading.Thread(target=lambda: process.log.extend(process.stdout), daemon=True).start()
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def alive(beat) -> None:
    if beat.poll() is not None:
        pytest.fail(f"beat exited with {beat.returncode}:\n" + "".join(beat.log[-40:]))


def test_beat_survives_a_database_outage_and_reads_the_schedule_again(private_postgres, beat):
    queue = f"beat-outage-{uuid.uuid4().hex[:8]}"
    manage(beat.url, "shell", "-c", SEED.format(name="before", queue=queue))
    sent = {"before": 0, "after": 0}

    def seen(name: str, at_least: int) -> bool:
        alive(beat)
        for key, count in drain(queue).items():
            sent[key] = sent.get(key, 0) + count
        return sent.get(name, 0) >= at_least

    wait_for(lambda: seen("before", 1), timeout=60, message="beat to send the task before the outage")

    private_postgres.stop()
    sent_before_outage = sent["before"]
    outage_ends = time.monotonic() + 4  # four full re-read intervals
    while time.monotonic() < outage_ends:
        seen("before", 0)  # fails the test as soon as beat exits
        time.sleep(0.5)
    assert sent["before"] > sent_before_outage  # it went on sending from the schedule it had read
    private_postgres.start()

    manage(beat.url, "shell", "-c", SEED.format(name="after", queue=queue))  # only a fresh read finds it
    wait_for(lambda: seen("after", 1), timeout=60, message="beat to send a task added after the outage")
    log = "".join(beat.log)
    assert "database unavailable" in log and "answers again" in log
    assert "beat raised exception" not in log
