"""The probes in an outage: /health touches nothing but the process, /ready answers 503 naming
what is down within its bound (opsportal/health.py), with a private Redis stopped."""

import shutil
import threading
import time

import kombu
import pytest
from django.core.cache import cache
from django.db import connections

from opsportal import health
from opsportal.celery import app as celery_app
from tests.outages import PrivateRedis


def test_health_touches_no_database_cache_or_broker(client, monkeypatch):
    """No django_db mark: any query fails the test; the cache and any broker connection raise."""

    def touched(*args, **kwargs):
        raise AssertionError("/health touched a dependency")

    for name in ("get", "set", "add", "delete", "get_many", "incr", "has_key"):
        monkeypatch.setattr(cache, name, touched)
    monkeypatch.setattr(kombu.Connection, "__init__", touched)
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.fixture
def stopped_redis(settings, monkeypatch):
    """Cache and broker on a private Redis that is stopped."""
    server = PrivateRedis().start()
    url = server.url()
    server.stop()
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}
    }
    monkeypatch.setattr(celery_app.conf, "broker_url", url)
    yield url
    server.close()


@pytest.fixture
def unreachable_database(transactional_db):
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    yield
    connection.close()
    connection.settings_dict.update(saved)


@pytest.mark.postgres
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to start a private one")
def test_ready_is_503_naming_everything_when_everything_is_down(client, stopped_redis, unreachable_database):
    started = time.perf_counter()
    response = client.get("/ready")
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail" and body["failing"] == ["database", "cache", "broker"]
    assert all(check["error"] for check in body["checks"].values())
    assert elapsed < 5, f"/ready took {elapsed:.1f} s"  # generous: its own bound is READY_TIMEOUT (1.5 s)
    assert client.get("/health").status_code == 200


def test_a_check_that_hangs_is_reported_as_failing_after_the_bound(client, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(health, "READY_TIMEOUT", 0.2)
    monkeypatch.setattr(health, "CHECKS", {"database": lambda: None, "cache": lambda: release.wait(30)})
    try:
        response = client.get("/ready")
    finally:
        release.set()
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["cache"] and body["checks"]["cache"] == {"ok": False, "error": "no answer within 0.2 s"}
    assert body["checks"]["database"]["ok"] is True
