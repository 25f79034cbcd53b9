"""A delivery whose worker meets a database outage retries for minutes, not seconds, and once its
retries are spent the next sweep queues it at once instead of after REQUEUE_AFTER."""

import pytest
from celery.exceptions import Retry
from django.core.cache import cache
from django.db import OperationalError

from incidents import tasks
from incidents.alerting import intake
from incidents.models import AlertDelivery, Incident
from incidents.tasks import process_alert_delivery, requeue_alert_deliveries
from tests.incidents.alerting.payloads import alert, alertmanager

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(post_alerts, monkeypatch):
    """A delivery stored and queued (the message is taken by the test, not a worker)."""
    cache.delete(tasks.GAVE_UP_KEY)
    with monkeypatch.context() as patched:
        patched.setattr(process_alert_delivery, "apply_async", lambda *a, **k: None)
        assert post_alerts(alertmanager(alert())).status_code == 202
    yield AlertDelivery.objects.get()
    cache.delete(tasks.GAVE_UP_KEY)


@pytest.fixture
def database_down(monkeypatch):
    """The worker's database is down: applying raises what psycopg raises through Django."""

    def down(delivery_id):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr(intake, "apply_delivery", down)


def run_like_a_worker(delivery_id: int) -> list[float]:
    """Each attempt as the worker gets it (the retry is a new message with retries + 1): the waits."""
    waits = []
    for retries in range(tasks.DELIVERY_RETRIES + 1):
        try:
            process_alert_delivery.apply((delivery_id,), retries=retries)
        except Retry as retry:
            waits.append(retry.when)
        except OperationalError:
            assert retries == tasks.DELIVERY_RETRIES  # spent: the last attempt fails the task
            return waits
    pytest.fail("the task never gave up")


def test_retries_cover_minutes_then_the_sweep_takes_it_at_once(stored, database_down, monkeypatch):
    waits = run_like_a_worker(stored.pk)
    assert len(waits) == tasks.DELIVERY_RETRIES
    assert sum(waits) >= 5 * 60  # at least five minutes of outage ridden out, whatever the jitter
    assert max(waits) <= tasks.DELIVERY_BACKOFF_MAX
    assert AlertDelivery.objects.get().state == "pending" and not Incident.objects.exists()

    monkeypatch.undo()  # the database is back
    assert requeue_alert_deliveries() == 1  # at once: it is only seconds old, far from REQUEUE_AFTER
    assert AlertDelivery.objects.get().state == "processed" and Incident.objects.count() == 1
    assert requeue_alert_deliveries() == 0  # the note is used once


def test_the_sweep_leaves_young_deliveries_that_did_not_give_up_to_their_retries(stored):
    assert requeue_alert_deliveries() == 0
    assert AlertDelivery.objects.get().state == "pending"


def test_a_sweep_without_the_cache_still_finds_old_deliveries(stored, monkeypatch):
    """The note is in the cache; if that is gone too, the age threshold still applies (no error)."""
    import time_machine
    from django.utils import timezone

    with time_machine.travel(timezone.now() + tasks.REQUEUE_AFTER * 1.2):
        assert requeue_alert_deliveries() == 1
