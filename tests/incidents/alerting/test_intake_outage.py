"""The intake with the broker down: a real private Redis, stopped. The POST answers at once (the
publish is bounded: opsportal.broker.publish), the delivery is stored, the answer is a 503 with
Retry-After, and Alertmanager's retry queues it once the broker is back."""

import shutil
import time

import pytest

from incidents.models import AlertDelivery, Incident
from opsportal import broker
from opsportal.celery import app as celery_app
from tests.incidents.alerting.payloads import alert, alertmanager
from tests.outages import PrivateRedis

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to start a private one"),
]


@pytest.fixture
def private_broker(eager_tasks, monkeypatch):
    """The Celery broker is a private Redis; the test stops and starts it."""
    celery_app.conf.task_always_eager = False  # the publish must really reach (or miss) the broker
    server = PrivateRedis().start()
    monkeypatch.setattr(celery_app.conf, "broker_url", server.url())
    with celery_app.connection_for_write(server.url()) as conn:
        celery_app.amqp.queues["intake"](conn.default_channel).declare()  # as a worker does when it starts
    yield server
    server.close()


def queued(server, queue: str = "intake") -> list:
    """The delivery ids waiting on the private broker's `queue` (taken off it)."""
    ids = []
    with celery_app.connection_for_read(server.url()) as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                message = simple.get(block=True, timeout=0.3)
                message.ack()
                ids.append(message.payload[0][0])  # the body is [args, kwargs, options]
        except simple.Empty:
            return ids
        finally:
            simple.close()


def test_broker_down_answers_503_at_once_and_the_retry_queues_it(post_alerts, private_broker):
    payload = alertmanager(alert())
    warm = post_alerts(alertmanager(alert(instance="warm")))  # the process's pool now holds a live connection
    assert warm.status_code == 202
    private_broker.stop()

    started = time.perf_counter()
    response = post_alerts(payload)
    elapsed = time.perf_counter() - started
    assert response.status_code == 503 and response["Retry-After"] == "10"
    assert "stored but could not be queued" in response.json()["detail"]
    # Celery's own publish waited 6.7 s here; the bounded one gives up within about a second.
    # Generous bound on a shared machine: this only catches a return to kombu's retries.
    assert elapsed < 5, f"the intake answered in {elapsed:.1f} s with the broker down"
    stored = AlertDelivery.objects.get(payload__alerts__0__labels__instance="api-1:8000")
    assert stored.state == "pending" and not Incident.objects.exists()  # durable, nothing applied yet

    private_broker.start()
    retry = post_alerts(payload)  # Alertmanager retries after a 5xx
    assert retry.status_code == 202 and retry.json() == {"status": "duplicate", "delivery": stored.pk, "alerts": 1}
    assert queued(private_broker) == [stored.pk]  # (the restart without persistence lost the warm-up's message)
    assert AlertDelivery.objects.count() == 2  # the retry stored nothing twice


def test_publish_does_not_retry_when_the_broker_is_down(private_broker, monkeypatch):
    """One connection attempt, then the error: no kombu retries, whatever their timing."""
    from kombu import Connection

    from incidents.tasks import process_alert_delivery

    private_broker.stop()
    attempts = []
    real = Connection._connection_factory

    def counting(self):
        attempts.append(self.hostname)
        return real(self)

    monkeypatch.setattr(Connection, "_connection_factory", counting)
    with pytest.raises(Exception):  # noqa: B017 - kombu's OperationalError or redis' ConnectionError
        broker.publish(process_alert_delivery, (1,))
    assert len(attempts) == 1
