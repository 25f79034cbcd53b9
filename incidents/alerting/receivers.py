"""Reactions to incident verbs: start and stop the response clocks, send notifications.

Connected in IncidentsConfig.ready(); they run inside the verb's transaction.
"""

from django.dispatch import receiver

from incidents import signals
from incidents.alerting import notify
from incidents.choices import EventKind, Status
from incidents.models import Page, SlaClock, TimelineEvent

TEST_INCIDENT_NOTE = (
    '**Test incident**, opened by a test alert (label `opsportal_test="true"`): nobody is paged, '
    "no escalation clock runs, no first look starts and no notification is sent. "
    "It resolves itself when the test alert resolves."
)


@receiver(signals.incident_declared, dispatch_uid="opsportal-clock-start")
def start_clock(sender, incident, event, **kwargs) -> None:
    if incident.is_test:
        TimelineEvent.record(incident, kind=EventKind.NOTE, body=TEST_INCIDENT_NOTE, occurred_at=event.occurred_at)
        return
    SlaClock.start(incident)
    notify.notify_created(incident, source_event=event)


@receiver(signals.incident_status_changed, dispatch_uid="opsportal-clock-status")
def status_changed(sender, incident, previous, status, by, event, **kwargs) -> None:
    if incident.is_test:
        _resolve_test(incident, status, by)
        return
    if previous == Status.TRIGGERED:
        clock = SlaClock.objects.filter(pk=incident.pk).first()
        if clock is not None:
            clock.stop_acknowledgement(event.occurred_at, by=by)
        if (
            by is not None
            and incident.commander_id is None
            and Page.objects.escalations().filter(incident=incident, user=by).exists()
        ):
            incident.take_command(by=by, reason="acknowledged the page and became commander.")
    notify.notify_status_changed(incident, previous=previous, status=status, by=by, source_event=event)


def _resolve_test(incident, status: str, by) -> None:
    """A test incident whose alerts all resolved (the intake mitigates it) resolves itself."""
    if status == Status.MITIGATED and by is None:
        incident.transition_to(
            Status.RESOLVED, by=None, note="The test alert resolved; a test incident resolves itself."
        )


@receiver(signals.incident_details_changed, dispatch_uid="opsportal-clock-severity")
def details_changed(sender, incident, changes, **kwargs) -> None:
    if "severity" not in changes or incident.is_test:
        return
    clock = SlaClock.objects.filter(pk=incident.pk).first()
    if clock is None:
        SlaClock.start(incident)
    else:
        clock.severity_changed(changes["severity"])
