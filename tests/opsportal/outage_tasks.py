"""Tasks for the outage tests' worker subprocesses (`celery worker --include tests.opsportal.outage_tasks`)."""

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.outage.sleep_then_mark", acks_late=True)
def sleep_then_mark(path: str, seconds: float) -> None:
    Path(f"{path}.started").touch()
    time.sleep(seconds)
    Path(path).write_text("done")
