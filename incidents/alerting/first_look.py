"""Where the runbooks' "first look" plugs in.

When an alert opens an incident and its integration has `run_first_look` on, the intake calls
`start_first_look` once, after the incident is committed. It announces `first_look_requested`;
the runbooks app, which builds on incidents, answers by starting the read-only automated steps
of the runbook answering `alertname`, so that the timeline already holds the diagnostics when
the responder arrives. Dangerous and change steps never start here.

Each incident's timeline says in one line when no first look ran: here when the integration has
them off (only incidents knows that); in the runbooks app when no runbook answers the alert or
none of its checks can run.
"""

from incidents.choices import EventKind
from incidents.models import TimelineEvent
from incidents.signals import first_look_requested


def start_first_look(incident, alertname: str, integration) -> None:
    if incident.is_test:
        return  # a test alert checks the intake, not the services: it runs nothing against them
    first_look_requested.send(type(incident), incident=incident, alertname=alertname, integration=integration)


def record_first_look_off(incident, integration) -> None:
    TimelineEvent.record(
        incident,
        kind=EventKind.RUNBOOK,
        body=f"First look skipped: integration **{integration.name}** has first looks off.",
    )
