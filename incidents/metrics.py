"""Prometheus counters for alert intake, escalation and notifications.

They live in the default registry; whichever /metrics view the project exposes picks them up.
Counters incremented in Celery workers are only visible to a scrape of the same process unless
prometheus_client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR).
"""

from prometheus_client import Counter

alerts_received_total = Counter(
    "opsportal_alerts_received_total",
    "Alerts received from Alertmanager or Grafana webhooks.",
    ["integration_kind", "status"],
)
escalations_total = Counter(
    "opsportal_escalations_total",
    "Incidents moved to a higher escalation level because nobody acknowledged them.",
    ["level"],
)
sla_breaches_total = Counter(
    "opsportal_sla_breaches_total",
    "Acknowledgement or resolution deadlines missed.",
    ["kind"],
)
webhook_attempts_total = Counter(
    "opsportal_webhook_attempts_total",
    "Outgoing webhook requests, by outcome (delivered, failed).",
    ["result"],
)
