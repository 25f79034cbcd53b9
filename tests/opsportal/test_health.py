import pytest
from django.db import connections

from opsportal.celery import app as celery_app


def test_health_is_200_without_touching_dependencies(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.celery_worker  # the broker's probe: CI runs it on Redis and on RabbitMQ
@pytest.mark.django_db
def test_ready_checks_database_cache_and_broker(client):
    response = client.get("/ready")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "cache", "broker"}


@pytest.fixture
def unreachable_database(transactional_db):
    """Points the real connection at a closed port; restored before the test database is flushed."""
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    yield
    connection.close()
    connection.settings_dict.update(saved)


# The test database on SQLite lives in memory and cannot be made unreachable; CI runs this on Postgres.
@pytest.mark.postgres
def test_ready_is_503_naming_the_database_when_it_is_unreachable(client, unreachable_database):
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail" and body["failing"] == ["database"]
    assert body["checks"]["database"]["ok"] is False and body["checks"]["database"]["error"]
    assert body["checks"]["cache"]["ok"] is True
    assert client.get("/health").status_code == 200


@pytest.mark.celery_worker
@pytest.mark.django_db
@pytest.mark.parametrize("url", ["redis://:s3cret@127.0.0.1:1/0", "amqp://ops:s3cret@127.0.0.1:1//"])
def test_ready_is_503_naming_the_broker_when_it_is_unreachable(client, monkeypatch, url):
    # The write URL: the CELERY_BROKER_URL environment variable (CI's RabbitMQ pass) wins over broker_url.
    monkeypatch.setitem(celery_app.conf, "broker_write_url", url)
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert "s3cret" not in response.content.decode()


def test_masking_removes_credentials_from_errors():
    from opsportal.health import _mask

    assert (
        _mask("could not connect to postgres://app:hunter2@db:5432/x")
        == "could not connect to postgres://***@db:5432/x"
    )


def test_favicon_ico_points_at_the_icon(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("/favicon.svg")
    assert finders.find("favicon.svg")
