"""The real services and the real worker of the runbook tests serve the ops tests too."""

from tests.runbooks.conftest import celery_worker, pg_dsn, redis_keys, redis_url, worker_thread  # noqa: F401
