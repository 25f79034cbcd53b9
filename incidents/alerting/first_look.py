"""Where the runbooks' "first look" plugs in.

When an alert opens an incident and its integration has `run_first_look` on, the intake calls
`start_first_look` once, after the incident is committed; runbooks.first_look starts the
read-only automated steps of the runbook answering `alertname`, so that the timeline already
holds the diagnostics when the responder arrives. Dangerous and change steps never start here.
"""


def start_first_look(incident, alertname: str, integration) -> None:
    from runbooks.first_look import start_first_look as start

    start(incident, alertname)
