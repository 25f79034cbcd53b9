"""Loaded into the benchmark's Celery worker (`-I bench.task_clock`): records when each task
started and ended (wall clock, the same clock as the rows' timestamps) in a Redis list, so the
benchmark can split queue wait from task time for tasks whose rows do not say when work began.
One RPUSH per task; nothing else changes in the worker."""

import json
import os
import time

import redis
from celery import shared_task
from celery.signals import task_postrun, task_prerun

_started: dict[str, float] = {}
_client = None
KEY = "opsportal-bench:task-clock"


def _redis():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _client


@task_prerun.connect
def _prerun(task_id=None, **kwargs):
    _started[task_id] = time.time()


@task_postrun.connect
def _postrun(task_id=None, task=None, args=None, state=None, **kwargs):
    started = _started.pop(task_id, None)
    if started is None:
        return
    first = args[0] if args else None
    record = {"name": getattr(task, "name", ""), "arg": first if isinstance(first, (int, str)) else None}
    record.update(started=started, finished=time.time(), state=state, pid=os.getpid())
    _redis().rpush(KEY, json.dumps(record))


@shared_task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """The floor: a task that does nothing, through the same worker and broker."""
