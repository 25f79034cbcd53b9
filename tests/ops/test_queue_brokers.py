"""The queue actions on both production brokers, Redis and RabbitMQ (AMQP), against a target
service's broker: what they count, purge, and say when the broker is down."""

import time

import pytest

from ops.actions.queues import broker_app
from ops.audit import perform
from opsportal import broker
from opsportal.celery import app
from runbooks.actions import TransientError
from tests.factories import ServiceFactory
from tests.runbooks.conftest import free_port, purge_runbook_queue

pytestmark = [pytest.mark.django_db, pytest.mark.celery_worker]


def test_stats_and_purge_count_the_waiting_messages(broker_url):
    producer = broker_app("ops-test-producer", broker_url)
    queue = f"ops-test-{int(time.time() * 1000)}"
    for n in range(3):
        producer.send_task("tests.nothing", args=[n], queue=queue)
    target = ServiceFactory(slug="jobs", broker_url=broker_url)
    stats = perform("queue_stats", {"queue": queue}, service=target, timeout=2)
    assert stats.data["queues"][queue]["waiting"] == 3
    assert perform("purge_queue", {"queue": queue}, service=target).summary == f"Purged 3 message(s) from {queue}."
    assert perform("queue_stats", {"queue": queue}, service=target, timeout=2).data["queues"][queue]["waiting"] == 0


def test_a_queue_the_broker_never_saw_is_empty_not_an_error(broker_url):
    """RabbitMQ answers NOT_FOUND (and closes the channel) where Redis answers 0."""
    target = ServiceFactory(slug="jobs", broker_url=broker_url)
    queue = f"never-{int(time.time() * 1000)}"
    assert perform("queue_stats", {"queue": queue}, service=target, timeout=2).data["queues"][queue]["waiting"] == 0
    assert perform("purge_queue", {"queue": queue}, service=target).summary == f"Purged 0 message(s) from {queue}."


def test_a_targets_purge_never_reaches_the_portals_own_queue(broker_url, monkeypatch):
    """Celery lets the CELERY_BROKER_URL environment variable (set in production for the portal's
    own broker) override an app's broker=: a target's purge must still go to the target."""
    portal = app.conf.broker_url
    if broker_url == portal:
        pytest.skip("the target's broker is the portal's own in this run")
    monkeypatch.setenv("CELERY_BROKER_URL", portal)
    purge_runbook_queue("runbooks")
    app.send_task("tests.nothing", queue="runbooks")  # one message on the portal's runbooks queue
    try:
        target = ServiceFactory(slug="jobs", broker_url=broker_url)
        perform("purge_queue", {"queue": "runbooks"}, service=target)
        with app.connection_for_read() as conn:
            assert broker.waiting(conn, "runbooks") == 1
    finally:
        purge_runbook_queue("runbooks")


def test_a_rabbitmq_that_is_down_is_a_clear_transient_error_without_the_password():
    down = ServiceFactory(slug="down", broker_url=f"amqp://ops:s3cret@127.0.0.1:{free_port()}//")
    with pytest.raises(TransientError, match="The broker is not reachable") as caught:
        perform("queue_stats", {"queue": "celery"}, service=down, timeout=2)
    assert "s3cret" not in str(caught.value)
