"""A delivery applied in chunks that crashes between two of them: the retry ends the incident as an
uninterrupted apply would, with each timeline entry once."""

import pytest
from django.db import OperationalError

from incidents.alerting import intake, sources
from incidents.models import AlertDelivery, Incident
from tests.incidents.alerting.payloads import alert, alertmanager, resolved

pytestmark = pytest.mark.django_db

CHUNK = 5


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(intake, "CHUNK_SIZE", CHUNK)


def firing(n: int) -> dict:
    return alert(instance=f"api-{n}:8000")


def stored(integration, *alerts: dict) -> AlertDelivery:
    raw = alertmanager(*alerts)
    delivery, _ = intake._keep(integration, raw, sources.get("alertmanager").normalise(raw))
    return delivery


def crash_before_last_chunk(monkeypatch, delivery: AlertDelivery) -> None:
    """The worker dies in the last chunk, after the earlier ones committed (its transaction rolls
    back); the retry (the task's own after a database error, or the redelivered message) applies
    the delivery again."""

    def crash(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patched:
        patched.setattr(intake, "_settle", crash)
        with pytest.raises(OperationalError):
            intake.apply_delivery(delivery.pk)
    assert AlertDelivery.objects.get(pk=delivery.pk).state == "pending"


def timeline(incident: Incident) -> list[str]:
    return list(incident.events.order_by("id").values_list("body", flat=True))


def resolve_all(integration, *, crash=None) -> Incident:
    """Eight alerts fire; three resolve; then one delivery resolves all eight over two chunks: the
    first resolves five, the last only repeats the three resolved already."""
    intake.apply_delivery(stored(integration, *[firing(n) for n in range(8)]).pk)
    intake.apply_delivery(
        stored(integration, *[firing(n) for n in range(5)], *[resolved(firing(n)) for n in range(5, 8)]).pk
    )
    delivery = stored(integration, *[resolved(firing(n)) for n in range(8)])
    if crash is not None:
        crash_before_last_chunk(crash, delivery)
    intake.apply_delivery(delivery.pk)
    return Incident.objects.get()


@pytest.mark.parametrize("crash", [False, True], ids=["uninterrupted", "crash-between-chunks"])
def test_the_last_resolution_mitigates_the_incident_once_even_after_a_crash(integration, monkeypatch, crash):
    incident = resolve_all(integration, crash=monkeypatch if crash else None)

    assert incident.status == "mitigated"
    entries = timeline(incident)
    for n in range(8):
        assert sum(e.startswith("**Resolved**") and f"instance=api-{n}:8000" in e for e in entries) == 1, n
    assert entries[-2:] == [
        "**All alerts resolved.**",
        "Status changed: **triggered** → **mitigated**\n\nAll alerts resolved; a person resolves the incident.",
    ]
    assert entries.count("**All alerts resolved.**") == 1
    delivery = AlertDelivery.objects.order_by("id").last()
    assert delivery.state == "processed"
    assert sorted(delivery.result.values()) == ["resolved"] * 5 + ["unchanged"] * 3


def test_a_retry_goes_on_from_the_last_committed_chunk(integration, monkeypatch):
    """The chunks a crashed attempt committed are not applied again: their results stay as they were."""
    delivery = stored(integration, *[firing(n) for n in range(12)])
    crash_before_last_chunk(monkeypatch, delivery)
    progress = AlertDelivery.objects.get(pk=delivery.pk)
    assert progress.applied_alerts == 2 * CHUNK and len(progress.result) == 2 * CHUNK
    assert set(progress.result.values()) == {"firing"}

    intake.apply_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "processed" and delivery.applied_alerts == 12
    assert list(delivery.result.values()) == ["firing"] * 12  # not "unchanged" for the first ten
    assert Incident.objects.get().alerts.count() == 12
