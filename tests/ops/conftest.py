"""The real services and the real worker of the runbook tests serve the ops tests too."""

import pytest

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


@pytest.fixture
def admin2(db):
    """A second admin: the one who approves what the first asked for."""
    from tests.factories import UserFactory

    return UserFactory(username="second", role="admin", is_staff=True)


@pytest.fixture
def api2(admin2):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin2)
    return client
