"""The first look: when an alert opens an incident, the read-only automated steps of the runbook
answering that alert start at once, so the diagnostics are on the timeline when a responder
arrives. Nothing that changes state ever starts this way."""

import logging

from django.dispatch import receiver

from incidents.choices import EventKind
from incidents.models import TimelineEvent
from incidents.signals import first_look_requested
from opsportal.errors import DomainError
from runbooks.models import Runbook, RunbookRun
from runbooks.models.run_plan import first_look_summary

logger = logging.getLogger(__name__)


@receiver(first_look_requested, dispatch_uid="runbooks-first-look")
def on_first_look_requested(sender, incident, alertname: str, **kwargs) -> None:
    start_first_look(incident, alertname)


def start_first_look(incident, alertname: str) -> RunbookRun | None:
    runbook = Runbook.objects.answering(alertname).order_by("-updated_at").first() if alertname else None
    if runbook is None:
        logger.info("first look for %s: no runbook answers alert %s", incident.reference, alertname or "(unnamed)")
        why = (
            f"no runbook answers alert `{alertname}`" if alertname else "the alert has no name for a runbook to answer"
        )
        TimelineEvent.record(incident, kind=EventKind.RUNBOOK, body=f"No first look: {why}.")
        return None
    try:
        return RunbookRun.start(runbook, by=None, incident=incident, first_look=alertname)
    except DomainError as exc:
        summary = first_look_summary(exc.extra.get("skipped", []))
        TimelineEvent.record(
            incident,
            kind=EventKind.RUNBOOK,
            body=f"First look for alert `{alertname}` did not start: {exc}{summary}",
        )
        return None
