"""Alert state follows Alertmanager's times, not arrival order: deliveries applied in every order
(two workers, a paused queue) end in the same alerts and the same incident state."""

from itertools import permutations

import pytest

from incidents.alerting import intake, sources
from incidents.models import Alert, AlertDelivery, AlertGroup, Incident
from tests.incidents.alerting.payloads import alert, alertmanager, resolved

pytestmark = pytest.mark.django_db


def apply_in_order(integration, payloads: list[dict]) -> None:
    """Store each payload, then apply the deliveries in exactly the given order."""
    for raw in payloads:
        delivery, _ = intake._keep(integration, raw, sources.get("alertmanager").normalise(raw))
        intake.apply_delivery(delivery.pk)


def state() -> tuple:
    alerts = sorted(
        (a.labels["instance"], a.status, a.starts_at.isoformat(), a.ends_at and a.ends_at.isoformat())
        for a in Alert.objects.all()
    )
    return Incident.objects.count(), tuple(sorted(Incident.objects.values_list("status", flat=True))), tuple(alerts)


def reset() -> None:
    Incident.objects.all().delete()
    AlertGroup.objects.all().delete()
    AlertDelivery.objects.all().delete()


def test_firing_and_resolved_of_two_alerts_end_the_same_in_every_order(integration):
    a, b = alert(instance="a"), alert(instance="b")
    deliveries = [alertmanager(a), alertmanager(b), alertmanager(resolved(a)), alertmanager(resolved(b))]
    finals = set()
    for order in permutations(deliveries):
        reset()
        apply_in_order(integration, list(order))
        finals.add(state())
    assert len(finals) == 1
    count, statuses, alerts = finals.pop()
    assert count == 1 and statuses == ("mitigated",)  # every alert is over: a person resolves it
    assert [(instance, status) for instance, status, *_ in alerts] == [("a", "resolved"), ("b", "resolved")]


def test_occurrences_of_one_alert_end_the_same_in_every_order(integration):
    first = alert(instance="a")
    second = alert(instance="a", starts="2025-12-16T11:00:00Z")  # fired again after resolving
    deliveries = [
        alertmanager(first),
        alertmanager(resolved(first)),
        alertmanager(second),
        alertmanager(resolved(second, ends="2025-12-16T11:30:00Z")),
    ]
    finals = set()
    for order in permutations(deliveries):
        reset()
        apply_in_order(integration, list(order))
        finals.add(state())
    assert finals == {
        (1, ("mitigated",), (("a", "resolved", "2025-12-16T11:00:00+00:00", "2025-12-16T11:30:00+00:00"),)),
    }


def test_a_resolve_applied_before_its_firing_is_kept_and_the_firing_is_known_to_be_over(post_alerts, integration):
    a = alert()
    apply_in_order(integration, [alertmanager(resolved(a))])
    incident = Incident.objects.get()
    assert incident.status == "mitigated"  # opened by the alert that fired, and over at once
    events = list(incident.events.filter(kind="alert").order_by("id").values_list("body", flat=True))
    assert events[0].startswith("**Fired and resolved**: `APIHigh5xxRate`")
    assert events[-1] == "**All alerts resolved.**"

    apply_in_order(integration, [alertmanager(a)])  # the late firing
    assert Incident.objects.count() == 1 and Alert.objects.get().status == "resolved"
    assert incident.events.filter(kind="alert").count() == len(events)  # recognised as over: nothing new
    assert AlertDelivery.objects.order_by("id").last().result == {a["fingerprint"]: "stale"}


def test_a_stale_firing_does_not_reopen_but_a_later_occurrence_fires_again(integration):
    a = alert()
    apply_in_order(integration, [alertmanager(a), alertmanager(resolved(a))])
    apply_in_order(integration, [{**alertmanager(a), "receiver": "ha-peer"}])  # the same firing, late
    assert Alert.objects.get().status == "resolved"

    apply_in_order(integration, [alertmanager(alert(starts="2025-12-16T11:00:00Z"))])
    row = Alert.objects.get()
    assert (row.status, row.starts_at.hour, row.ends_at) == ("firing", 11, None)
    assert Incident.objects.count() == 1
