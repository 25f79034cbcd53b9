"""Tasks for the outage tests' worker subprocesses (`celery worker --include tests.opsportal.outage_tasks`)."""

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.outage.sleep_then_mark", acks_late=True)
def sleep_then_mark(path: str, seconds: float) -> None:
    Path(f"{path}.started").touch()
    time.sleep(seconds)
    Path(path).write_text("done")


@shared_task(name="tests.outage.note_backend_pid")
def note_backend_pid(path: str) -> None:
    """Appends the PostgreSQL backend pid of the task's database connection (a query, as any task makes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(path, "a") as out:
        out.write(f"{pid}\n")
