"""Where the runbooks' "first look" plugs in.

When an alert opens an incident and its integration has `run_first_look` on, the intake calls
`start_first_look` once, after the incident is committed. The runbooks app (issue 3) is to
start here the `read_only` automated steps of the runbook answering `alertname`, so that the
timeline already holds the diagnostics when the responder arrives. Dangerous and change steps
must never start from here.

Not wired yet: until the runbooks app is merged this only logs.
"""

import logging

logger = logging.getLogger(__name__)


def start_first_look(incident, alertname: str, integration) -> None:
    logger.info(
        "first look for %s (alert %s from %s): no runbooks app installed yet",
        incident.reference,
        alertname,
        integration.name,
    )
