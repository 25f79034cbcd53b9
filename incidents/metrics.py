"""Prometheus counters for alert intake, escalation and notifications.

They live in the default registry, so opsportal/metrics.py's /metrics serves them. Escalations,
breaches and webhook attempts are counted in Celery workers: give the workers the same
PROMETHEUS_MULTIPROC_DIR as gunicorn so /metrics adds them up.
"""

from prometheus_client import Counter

alerts_received_total = Counter(
    "alerts_received_total",
    "Alerts received from Alertmanager or Grafana webhooks.",
    ["integration_kind", "status"],
)
escalations_total = Counter(
    "escalations_total",
    "Incidents moved to a higher escalation level because nobody acknowledged them.",
    ["level"],
)
sla_breaches_total = Counter(
    "sla_breaches_total",
    "Acknowledgement or resolution deadlines missed.",
    ["kind"],
)
webhook_attempts_total = Counter(
    "webhook_attempts_total",
    "Outgoing webhook requests, by outcome (delivered, failed).",
    ["result"],
)
