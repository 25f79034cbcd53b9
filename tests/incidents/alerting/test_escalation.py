"""Response clocks with frozen time: acknowledge in 15 min, resolve in 60, escalate L1 → L2 → L3 every 30."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from incidents.metrics import escalations_total, sla_breaches_total
from incidents.models import EscalationContact, EscalationPolicy, SlaClock, WebhookDelivery, WebhookEndpoint
from incidents.tasks import run_escalations
from tests.factories import IncidentFactory, UserFactory
from tests.incidents.alerting.payloads import alert, alertmanager, resolved

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ladder(db):
    oncall = UserFactory(username="oncall", email="oncall@example.com", role="responder")
    EscalationContact.objects.create(level=1, user=oncall)
    EscalationContact.objects.create(level=2, email="backend-lead@cosmetica5.example", note="backend lead")
    stakeholders = WebhookEndpoint.objects.create(name="stakeholders", url="http://127.0.0.1:9/hook", events=[])
    EscalationContact.objects.create(level=3, endpoint=stakeholders)
    return stakeholders


def at(minutes: float, *, callbacks):
    """Run the beat task at T0 + minutes, with on-commit work (mail, webhooks) executed."""
    with time_machine.travel(T0 + timedelta(minutes=minutes), tick=False), callbacks(execute=True):
        return run_escalations()


def escalation_events(incident):
    return list(
        incident.events.filter(kind="escalation")
        .exclude(body__startswith="Nobody to page")
        .order_by("id")
        .values_list("body", flat=True)
    )


def counter(metric, **labels):
    return metric.labels(**labels)._value.get()


def test_unacknowledged_sev1_climbs_the_ladder(ladder, django_capture_on_commit_callbacks, monkeypatch):
    # Sending is tested elsewhere.
    monkeypatch.setattr("incidents.tasks.deliver_webhook.apply_async", lambda *a, **k: None)
    breaches_before = counter(sla_breaches_total, kind="ack"), counter(sla_breaches_total, kind="resolve")
    escalations_before = counter(escalations_total, level="L2")
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        incident = IncidentFactory(title="APIHigh5xxRate", severity="SEV1")
    clock = incident.sla
    assert (clock.ack_due_at, clock.resolve_due_at) == (T0 + timedelta(minutes=15), T0 + timedelta(minutes=60))
    assert clock.level == 1 and clock.next_escalation_at == T0 + timedelta(minutes=30)
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]]  # L1 is paged at once
    assert "[SEV1] INC-" in mail.outbox[0].subject

    assert at(14, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 0, "resolve": 0}
    assert at(15.1, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 1, "resolve": 0}
    assert escalation_events(incident) == ["SLA breached: not acknowledged within 15 min (due 09:15 UTC)."]
    assert at(16, callbacks=django_capture_on_commit_callbacks)["ack"] == 0  # recorded once

    assert at(30, callbacks=django_capture_on_commit_callbacks)["escalated"] == 1
    assert "Escalated to **L2 — tech lead / DBA**: not acknowledged after 30 min (was L1)." in escalation_events(
        incident
    )
    assert mail.outbox[-1].to == ["backend-lead@cosmetica5.example"]
    assert "escalated to L2" in mail.outbox[-1].subject
    assert at(30, callbacks=django_capture_on_commit_callbacks)["escalated"] == 0  # beat running twice

    result = at(60, callbacks=django_capture_on_commit_callbacks)
    assert result == {"escalated": 1, "ack": 0, "resolve": 1}
    incident.sla.refresh_from_db()
    assert incident.sla.level == 3 and incident.sla.next_escalation_at is None  # top of the ladder
    [delivery] = WebhookDelivery.objects.filter(endpoint=ladder)
    assert delivery.event == "incident.escalated" and delivery.payload["level"] == 3

    assert at(120, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 0, "resolve": 0}
    assert len(escalation_events(incident)) == 4  # ack breach, L2, L3, resolve breach
    assert counter(sla_breaches_total, kind="ack") - breaches_before[0] == 1
    assert counter(sla_breaches_total, kind="resolve") - breaches_before[1] == 1
    assert counter(escalations_total, level="L2") - escalations_before == 1


def test_acknowledging_stops_the_ack_clock_and_escalation(ladder, responder, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(severity="SEV2")
    with time_machine.travel(T0 + timedelta(minutes=7), tick=False), django_capture_on_commit_callbacks(execute=True):
        incident.transition_to("acknowledged", by=responder)
    assert SlaClock.objects.get(pk=incident.pk).acknowledged_at == T0 + timedelta(minutes=7)
    assert at(45, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 0, "resolve": 0}
    assert at(61, callbacks=django_capture_on_commit_callbacks)["resolve"] == 1  # resolution is still due
    state = SlaClock.objects.get(pk=incident.pk).state(T0 + timedelta(minutes=61))
    assert state["ack"]["state"] == "met" and state["resolve"]["state"] == "breached"


def test_skipping_straight_to_investigating_also_counts_as_acknowledged(responder, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(severity="SEV1")
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        incident.transition_to("investigating", by=responder)
    assert at(40, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 0, "resolve": 0}
    assert SlaClock.objects.get(pk=incident.pk).state(T0 + timedelta(minutes=40))["ack"]["state"] == "late"


def test_resolving_stops_every_clock(responder, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(severity="SEV1")
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        incident.transition_to("resolved", by=responder, note="False alarm")
    assert at(300, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 0, "resolve": 0}
    assert not incident.events.filter(kind="escalation").exclude(body__startswith="Nobody to page").exists()


def test_severity_change_applies_the_new_policy(responder, django_capture_on_commit_callbacks):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(severity="SEV4")
    clock = incident.sla
    assert clock.ack_due_at == T0 + timedelta(hours=24) and clock.next_escalation_at is None
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        incident.update_details(by=responder, severity="SEV1")
    clock.refresh_from_db()
    assert clock.ack_due_at == T0 + timedelta(minutes=15)
    assert clock.next_escalation_at == T0 + timedelta(minutes=30)


def test_a_disabled_policy_means_no_clock(db):
    EscalationPolicy.objects.filter(severity="SEV3").update(enabled=False)
    incident = IncidentFactory(severity="SEV3")
    assert not SlaClock.objects.filter(pk=incident.pk).exists()


def test_incident_page_shows_the_live_countdowns(client, responder):
    with time_machine.travel(T0, tick=False):
        incident = IncidentFactory(severity="SEV1")
    client.force_login(responder)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        page = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert 'data-testid="sla"' in page
    assert "10m 00s left" in page and "55m 00s left" in page
    assert 'data-due="2026-03-02T09:15:00+00:00"' in page
    assert "L1 — on-call engineer" in page


def test_alerts_resolving_alone_stop_escalation_but_are_not_an_acknowledgement(
    post_alerts, django_capture_on_commit_callbacks
):
    firing = alert()
    with time_machine.travel(T0, tick=False):
        post_alerts(alertmanager(firing))
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        post_alerts(alertmanager(resolved(firing)))
    clock = SlaClock.objects.get()
    assert clock.incident.status == "mitigated"
    assert clock.acknowledged_at is None and clock.next_escalation_at is None
    assert clock.state(T0 + timedelta(minutes=20))["ack"]["state"] == "skipped"
    assert at(45, callbacks=django_capture_on_commit_callbacks) == {"escalated": 0, "ack": 0, "resolve": 0}
    assert at(61, callbacks=django_capture_on_commit_callbacks)["resolve"] == 1  # a person still has to resolve it
