import importlib

import pytest
from rest_framework.test import APIClient

from tests.factories import IncidentFactory, UserFactory

ROLES = ["anonymous", "viewer", "responder", "admin"]


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


# Rows that data migrations create; a transactional test flushes every table when it ends.
DATA_MIGRATIONS = [
    ("incidents.migrations.0002_role_groups", "create_groups"),
    ("incidents.migrations.0006_default_escalation_policies", "create_policies"),
    ("ops.migrations.0002_periodic_tasks", "create_periodic_tasks"),
    ("ops.migrations.0004_sweep_action_requests_schedule", "create"),
]


@pytest.fixture(autouse=True)
def _rows_from_data_migrations(request):
    """Puts back what data migrations created, for transactional tests that follow another one."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return
    request.getfixturevalue("transactional_db")
    from django.apps import apps

    for module, function in DATA_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Throttle and limiter counts left by one test must not throttle the next (keys only: the
    Redis database may also hold the Celery broker's queues)."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("throttle_*")
        cache.delete_pattern("rl:*")
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _fresh_ops_cache(_fresh_rate_limits):
    """Tagged values and the maintenance switch's cached copy describe rows that the previous
    test's rollback removed (ops: opsportal/tagged_cache.py, ops/maintenance.py)."""
    from ops import maintenance
    from opsportal import tagged_cache

    tagged_cache.invalidate(tagged_cache.TAGS)
    maintenance.remember(False)


class BrokerOutage:
    """Publishing, Celery's and the bounded one (opsportal.broker.publish), points at a closed port
    until `back()`. The app caches its producer pool, so it is dropped on the way in and out: the
    broken URL must not leak into other tests. Tasks are published for real, not run eagerly."""

    def __init__(self):
        self._patch = pytest.MonkeyPatch()

    @staticmethod
    def _fresh_pools():
        from opsportal.celery import app

        app._pool = None
        app.amqp._producer_pool = None

    def down(self) -> "BrokerOutage":
        from opsportal.celery import app

        self._fresh_pools()
        # Celery reads CELERY_BROKER_URL from the environment before its settings (the RabbitMQ pass sets it).
        self._patch.setenv("CELERY_BROKER_URL", "amqp://ops:s3cret@127.0.0.1:1//")
        self._patch.setitem(app.conf, "broker_url", "amqp://ops:s3cret@127.0.0.1:1//")
        self._patch.setitem(app.conf, "task_publish_retry", False)
        self._patch.setitem(app.conf, "broker_transport_options", {"max_retries": 1, "interval_start": 0})
        self._patch.setitem(app.conf, "task_always_eager", False)
        return self

    def back(self) -> None:
        self._patch.undo()
        self._fresh_pools()


@pytest.fixture
def broker_down():
    outage = BrokerOutage().down()
    yield outage
    outage.back()


@pytest.fixture
def viewer(db):
    return UserFactory(username="victor", role="viewer")


@pytest.fixture
def responder(db):
    return UserFactory(username="alice", role="responder")


@pytest.fixture
def responder2(db):
    return UserFactory(username="bob", role="responder")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", role="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def user_for(viewer, responder, admin_user):
    return {"anonymous": None, "viewer": viewer, "responder": responder, "admin": admin_user}.__getitem__


@pytest.fixture
def api_for(user_for):
    """An API client signed in as the given role (None: anonymous)."""

    def make(role: str) -> APIClient:
        client = APIClient()
        user = user_for(role)
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def api(api_for):
    return api_for("responder")


@pytest.fixture
def incident(responder):
    return IncidentFactory(title="Checkout 5xx", created_by=responder)


class JsonLogs:
    def __init__(self, stream):
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    @property
    def records(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def json_logs():
    """What the stdout handler writes during the test, through the same JSON formatter."""
    import io
    import logging

    from opsportal.logging import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield JsonLogs(stream)
    root.removeHandler(handler)
