"""Reactions to incident verbs: start and stop the response clocks, send notifications.

Connected in IncidentsConfig.ready(); they run inside the verb's transaction.
"""

from django.dispatch import receiver

from incidents import signals
from incidents.alerting import notify
from incidents.choices import Status
from incidents.models import Page, SlaClock


@receiver(signals.incident_declared, dispatch_uid="opsportal-clock-start")
def start_clock(sender, incident, event, **kwargs) -> None:
    SlaClock.start(incident)
    notify.notify_created(incident, source_event=event)


@receiver(signals.incident_status_changed, dispatch_uid="opsportal-clock-status")
def status_changed(sender, incident, previous, status, by, event, **kwargs) -> None:
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


@receiver(signals.incident_details_changed, dispatch_uid="opsportal-clock-severity")
def details_changed(sender, incident, changes, **kwargs) -> None:
    if "severity" not in changes:
        return
    clock = SlaClock.objects.filter(pk=incident.pk).first()
    if clock is None:
        SlaClock.start(incident)
    else:
        clock.severity_changed(changes["severity"])
