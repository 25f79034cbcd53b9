import pytest

from incidents.choices import Status
from incidents.models import Incident
from opsportal.errors import DomainError, InvalidTransition
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def status_events(incident):
    return list(incident.events.filter(kind="status_change").values_list("body", flat=True))


def test_declare_writes_the_first_timeline_event(responder):
    incident = IncidentFactory(title="DB down", severity="SEV1", created_by=responder)
    assert incident.status == Status.TRIGGERED
    assert incident.reference == f"INC-{incident.pk}"
    assert incident.started_at == incident.detected_at
    [event] = incident.events.exclude(body__startswith="Nobody to page")  # no contacts: the paging warning follows
    assert event.source == "system" and event.author == responder
    assert "SEV1" in event.body and "P0" in event.body


def test_forward_moves_stamp_their_timestamp_and_write_an_event(incident, responder):
    incident.transition_to("acknowledged", by=responder, note="Looking at it")
    assert incident.status == "acknowledged" and incident.acknowledged_at is not None
    incident.transition_to("investigating", by=responder)
    incident.transition_to("mitigated", by=responder)
    incident.transition_to("resolved", by=responder)
    incident.transition_to("closed", by=responder)
    incident.refresh_from_db()
    assert incident.mitigated_at and incident.resolved_at and incident.closed_at
    bodies = status_events(incident)
    assert bodies[1] == "Status changed: **triggered** → **acknowledged**\n\nLooking at it"
    assert len(bodies) == 6  # declaration + five moves


def test_forward_skip_leaves_skipped_timestamps_empty(incident, responder):
    incident.transition_to("resolved", by=responder, note="False alarm")
    assert incident.status == "resolved"
    assert incident.acknowledged_at is None and incident.mitigated_at is None
    assert incident.resolved_at is not None


@pytest.mark.parametrize(
    ("start", "target"),
    [("acknowledged", "triggered"), ("mitigated", "investigating"), ("resolved", "mitigated"), ("closed", "resolved")],
)
def test_backward_moves_other_than_reopen_are_refused(incident, responder, start, target):
    incident.transition_to(start, by=responder, note="Moved straight here")
    with pytest.raises(InvalidTransition, match=f"from {start} to {target}"):
        incident.transition_to(target, by=responder)
    incident.refresh_from_db()
    assert incident.status == start


def test_moving_to_the_current_status_is_refused(incident, responder):
    incident.transition_to("acknowledged", by=responder)
    with pytest.raises(InvalidTransition, match="already acknowledged"):
        incident.transition_to("acknowledged", by=responder)
    assert len(status_events(incident)) == 2


def test_unknown_status_is_a_domain_error(incident, responder):
    with pytest.raises(DomainError, match="Unknown status 'fixed'"):
        incident.transition_to("fixed", by=responder)


@pytest.mark.parametrize("closed_first", [False, True])
def test_reopen_from_resolved_or_closed_goes_back_to_investigating(incident, responder, closed_first):
    incident.transition_to("resolved", by=responder)
    if closed_first:
        incident.transition_to("closed", by=responder)
    incident.transition_to("investigating", by=responder, note="It came back")
    incident.refresh_from_db()
    assert incident.status == "investigating"
    assert incident.resolved_at is None and incident.closed_at is None
    assert status_events(incident)[-1].startswith("Reopened:")
    incident.transition_to("resolved", by=responder)
    assert incident.resolved_at is not None


def test_reopen_is_only_to_investigating(incident, responder):
    incident.transition_to("closed", by=responder, note="Duplicate of INC-1")
    with pytest.raises(InvalidTransition):
        incident.transition_to("acknowledged", by=responder)


def test_update_details_records_one_event_listing_the_changes(incident, responder, responder2):
    from tests.factories import ServiceFactory

    api = ServiceFactory(name="API", slug="api")
    lines = incident.update_details(by=responder, severity="SEV1", commander=responder2, services=[api])
    assert lines == ["Severity: SEV3 → SEV1", "Commander: bob", "Affected services: API"]
    event = incident.events.order_by("-id").first()
    assert event.source == "system" and "Severity: SEV3 → SEV1" in event.body
    assert incident.update_details(by=responder, severity="SEV1") == []
    assert Incident.objects.get(pk=incident.pk).severity == "SEV1"
