"""The Celery app. Broker, routes and time limits live in settings; the beat schedule is in the
database, edited in the admin under "Periodic tasks" (settings explain why).

Logging: the worker keeps Django's LOGGING (JSON on stdout) instead of installing its own
handlers, and each task logs with the request id of the web request that enqueued it.
"""

import logging.config
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")

app = Celery("opsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_tokens: dict = {}


@signals.setup_logging.connect
def use_django_logging(**kwargs) -> None:
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.before_task_publish.connect
def carry_request_id(headers=None, **kwargs) -> None:
    from opsportal.logging import current_request_id

    request_id = current_request_id()
    if headers is not None and request_id:
        headers.setdefault("request_id", request_id)


@signals.task_prerun.connect
@signals.task_postrun.connect
def refresh_database_connections(task=None, **kwargs) -> None:
    """As around a web request: drop a connection past CONN_MAX_AGE, broken, or failed by a
    database outage, so the next query connects afresh (settings.CELERY_DB_REUSE_MAX keeps Celery
    from closing a healthy one around every task). Not for eager tasks, which run inside the
    caller's transaction."""
    if task is not None and not getattr(task.request, "is_eager", False):
        from django.db import close_old_connections

        close_old_connections()


@signals.task_prerun.connect
def enter_task_context(task_id=None, task=None, **kwargs) -> None:
    from opsportal.logging import new_request_id, request_context

    incoming = getattr(task.request, "request_id", None) if task else None
    context = {"request_id": new_request_id(incoming or task_id), "task": getattr(task, "name", None)}
    _tokens[task_id] = request_context.set(context)


@signals.task_postrun.connect
def leave_task_context(task_id=None, **kwargs) -> None:
    from opsportal.logging import request_context

    token = _tokens.pop(task_id, None)
    if token is not None:
        request_context.reset(token)


@signals.worker_init.connect
def start_metrics_exporter(**kwargs) -> None:
    """The worker's own /metrics when WORKER_METRICS_PORT is set (README "Deploying > Metrics")."""
    from opsportal.metrics import start_worker_exporter

    start_worker_exporter()


@signals.worker_process_shutdown.connect
def forget_pool_process(pid=None, **kwargs) -> None:
    """A pool process that exits takes its live gauges with it (as gunicorn.conf.py does for web workers)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


@signals.task_failure.connect
def count_task_failure(sender=None, exception=None, **kwargs) -> None:
    from opsportal.metrics import count_exception

    if exception is not None:
        count_exception(exception, location=getattr(sender, "name", None))
