"""What happened to an incident, for the parts of the portal that react to it (response
clocks, notifications, later reviews). Sent inside the verb's transaction: receivers that
write rows join it; receivers that talk to the outside world use transaction.on_commit."""

from django.dispatch import Signal

from incidents.notifications.registry import register_event

# incident, by, event (its first timeline entry)
incident_declared = Signal()
# incident (saved with the new status), previous, status, by, event (the status entry)
incident_status_changed = Signal()
# incident, changes: {field: new value}, by
incident_details_changed = Signal()
# incident, alertname, integration: sent after commit when an alert opened the incident and the
# integration runs first looks; runbooks starts the read-only checks of the answering runbook.
first_look_requested = Signal()

# What webhook endpoints can subscribe to about incidents (incidents.alerting.notify sends them).
INCIDENT_CREATED = register_event("incident.created", "Incident created")
STATUS_CHANGED = register_event("incident.status_changed", "Status changed")
ESCALATED = register_event("incident.escalated", "Escalated")
