"""The real services and the real worker of the runbook tests serve the ops tests too."""

from tests.runbooks.conftest import (  # noqa: F401
    amqp_url,
    broker_url,
    celery_worker,
    http_service,
    pg_dsn,
    redis_keys,
    redis_url,
    worker_thread,
)
