"""gunicorn settings (Procfile `web:`): JSON logs like every other process, metrics across workers.

Each request is logged once, by opsportal.middleware.RequestObservabilityMiddleware, so
gunicorn's own access log stays off. With PROMETHEUS_MULTIPROC_DIR set (an empty directory,
cleaned before gunicorn starts), each worker writes its metrics there and /metrics adds them up;
a worker that exits has its live gauges dropped.
"""

import os

accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "opsportal.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
    },
}


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
