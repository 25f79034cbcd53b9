"""Prometheus counters for alert intake, escalation and notifications.

They live in the default registry, so opsportal/metrics.py's /metrics serves them. Escalations,
breaches and webhook attempts are counted in Celery workers: give the workers the same
PROMETHEUS_MULTIPROC_DIR as gunicorn so /metrics adds them up.
"""

import logging

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from incidents.choices import Severity

logger = logging.getLogger(__name__)

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
pages_total = Counter(
    "pages_total",
    "Pages sent to people (e-mail, personal webhook), by channel and outcome (sent, failed).",
    ["channel", "result"],
)
pages_unrouted_total = Counter(
    "pages_unrouted_total",
    "Escalation levels that reached nobody (no contacts, nobody on call, no way to reach them).",
    ["level"],
)
webhook_attempts_total = Counter(
    "webhook_attempts_total",
    "Outgoing webhook requests, by outcome (delivered, failed).",
    ["result"],
)
notifications_failed_total = Counter(
    "notifications_failed_total",
    "Notifications given up on (an e-mail that could not be sent, a webhook out of retries), by channel.",
    ["channel"],
)


class OpenIncidentsCollector:
    """incidents_open{severity}, counted from the database at scrape time, so it is right under
    any number of web and worker processes (registered in IncidentsConfig.ready)."""

    def collect(self):
        from incidents.models import Incident  # models are not ready when this module is first imported

        gauge = GaugeMetricFamily("incidents_open", "Open incidents by severity.", labels=["severity"])
        try:
            counts = dict(Incident.objects.open().values_list("severity").annotate(n=Count("id")).order_by())
        except DatabaseError as exc:
            logger.warning("metrics: open incidents not collected: %s", type(exc).__name__)
            return
        for severity in Severity.values:
            gauge.add_metric([severity], counts.get(severity, 0))
        yield gauge


OPEN_INCIDENTS = OpenIncidentsCollector()
