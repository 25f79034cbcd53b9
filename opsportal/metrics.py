"""Prometheus metrics: the names the seed runbooks query, the portal's own, and a guarded /metrics.

Every label value comes from a closed set (URL patterns, HTTP methods, status codes, exception
classes, code locations, known reasons), never from the raw request, so the number of series
stays bounded however many distinct URLs are requested.

Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared
by the workers (gunicorn.conf.py cleans up after dead workers); /metrics then adds up all of them.
"""

import hmac
import ipaddress
import logging
import os
import re

import prometheus_client
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus import middleware as django_prometheus_middleware
from prometheus_client import Counter, Histogram, multiprocess

from opsportal import broker
from opsportal.client_ip import client_ip

logger = logging.getLogger(__name__)
# Counters' *_created twins double the series and no runbook query reads them.
prometheus_client.disable_created_metrics()

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
UNMATCHED_ROUTE = "<unmatched>"
_LABEL_SAFE = re.compile(r"^[A-Za-z0-9_.:<>-]{1,96}$")

# Names from the seed runbooks --------------------------------------------------------------
http_requests_total = Counter(
    "http_requests_total", "HTTP requests by method, URL pattern and status.", ["method", "route", "status"]
)
exceptions_total = Counter(
    "exceptions_total", "Unhandled exceptions by class and where they were raised.", ["exception_type", "location"]
)
auth_success_total = Counter("auth_success_total", "Successful sign-ins.")
auth_failures_total = Counter(
    "auth_failures_total", "Refused sign-ins by reason (invalid_credentials, locked_out, rate_limited).", ["reason"]
)
auth_lockouts_total = Counter("auth_lockouts_total", "(username, client IP) pairs locked after too many failures.")
auth_unlocks_total = Counter("auth_unlocks_total", "Lockouts cleared by hand, by where (admin, command).", ["via"])
public_leads_requests_total = Counter(
    "public_leads_requests_total", "Problem reports submitted to the public endpoint or form, throttled or not."
)
public_leads_throttled_total = Counter(
    "public_leads_throttled_total", "Problem reports refused by LeadBurstThrottle or LeadHourlyThrottle."
)
public_leads_rejected_total = Counter(
    "public_leads_rejected_total",
    "Problem reports refused as bad input (invalid, too_large, honeypot) or while the limiter is down (unavailable).",
    ["reason"],
)
rate_limiter_errors_total = Counter(
    "rate_limiter_errors_total", "Limiter checks that could not reach the cache, by limiter.", ["limiter"]
)

# The portal's own -----------------------------------------------------------------------------
_DURATION_BUCKETS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)
incident_time_to_acknowledge_seconds = Histogram(
    "incident_time_to_acknowledge_seconds",
    "From detection to first acknowledgement.",
    ["severity"],
    buckets=_DURATION_BUCKETS,
)
incident_time_to_resolve_seconds = Histogram(
    "incident_time_to_resolve_seconds", "From detection to resolution.", ["severity"], buckets=_DURATION_BUCKETS
)
# The retention sweep (ops/retention.py): the seed's retention.* counters and sweep duration.
retention_deleted_total = Counter(
    "retention_deleted_total", "Rows removed (step outputs: cleared) by the retention sweep, by kind.", ["kind"]
)
retention_runs_total = Counter("retention_runs_total", "Retention sweeps run (dry runs excluded).")
retention_sweep_duration_seconds = Histogram(
    "retention_sweep_duration_seconds",
    "Duration of a retention sweep.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900),
)


def label(value: str, *, fallback: str = "other") -> str:
    """A label value from a closed vocabulary; anything unexpected collapses into `fallback`."""
    value = str(value or "")
    return value if _LABEL_SAFE.match(value) else fallback


def observe_incident_stamp(stamp: str, *, severity: str, detected_at, at) -> None:
    """Called by Incident.transition_to after commit, when a status first sets its timestamp."""
    histogram = {
        "acknowledged_at": incident_time_to_acknowledge_seconds,
        "resolved_at": incident_time_to_resolve_seconds,
    }.get(stamp)
    if histogram is not None and detected_at is not None:
        histogram.labels(severity=label(severity)).observe(max((at - detected_at).total_seconds(), 0.0))


def http_method(method: str) -> str:
    """The method as a label: one of HTTP_METHODS, else "other" (`curl -X M123` adds no series)."""
    return method if method in HTTP_METHODS else "other"


def http_status(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


def observe_request(method: str, route: str, status: int) -> None:
    http_requests_total.labels(method=http_method(method), route=route, status=http_status(status)).inc()


class PrometheusAfterMiddleware(django_prometheus_middleware.PrometheusAfterMiddleware):
    """django_prometheus's middleware with its `method` labels bounded like ours: it passes the raw
    request method to its latency histogram, so every made-up method was a new series."""

    def label_metric(self, metric, request, response=None, **labels):
        if "method" in labels:
            labels["method"] = http_method(labels["method"])
        return super().label_metric(metric, request, response, **labels)


def request_route(request: HttpRequest) -> str:
    """The URL pattern that served the request ("incidents/<int:pk>/"), never the path itself."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return UNMATCHED_ROUTE
    return match.route


def count_exception(exc: BaseException, *, location: str | None = None) -> None:
    if location is None:
        location = _raised_in(exc)
    exceptions_total.labels(exception_type=type(exc).__name__, location=label(location, fallback="unknown")).inc()


def _raised_in(exc: BaseException) -> str:
    """module.function of the innermost frame of our own code on the traceback (else the innermost)."""
    tb, ours, last = exc.__traceback__, None, None
    root = str(settings.BASE_DIR)
    venv = os.sep + ".venv" + os.sep
    while tb is not None:
        code = tb.tb_frame.f_code
        last = f"{tb.tb_frame.f_globals.get('__name__', '?')}.{code.co_name}"
        if code.co_filename.startswith(root) and venv not in code.co_filename:
            ours = last
        tb = tb.tb_next
    return ours or last or "unknown"


# Gauges an app computes from its own rows at scrape time: right under any number of workers.
# Apps register a collector (an object with `collect()`, as prometheus_client defines it) from
# their AppConfig.ready(); the platform knows none of their models.
_scrape_collectors: list = []


def register_scrape_collector(collector) -> None:
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


class _Scrape:
    """What one scrape exposes: this process (or every worker's files) plus the apps' scrape-time gauges."""

    def collect(self):
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = prometheus_client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from prometheus_client.REGISTRY.collect()
        for collector in _scrape_collectors:
            yield from collector.collect()


class _QueueDepth:
    """opsportal_queue_messages{queue}: the messages waiting on each of the portal's queues, asked of
    the broker at scrape time (Redis, RabbitMQ or the filesystem: one passive declare per queue).
    Every worker host reports the same figure: query it with max by (queue)."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from opsportal.celery import app

        family = GaugeMetricFamily(
            "opsportal_queue_messages", "Messages waiting on the broker by queue.", labels=["queue"]
        )
        try:
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
                for queue in settings.OPSPORTAL_QUEUES:
                    family.add_metric([queue], broker.waiting(conn, queue))
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even with the broker down
            logger.warning("queue depth not collected: %s: %s", type(exc).__name__, exc)
            return
        yield family


def worker_registry() -> prometheus_client.CollectorRegistry:
    """What a worker's exporter serves: every pool process's metrics and the queue depths (the web
    tier serves the scrape-time gauges computed from rows, once for all hosts)."""
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry)
    registry.register(_QueueDepth())
    return registry


def start_worker_exporter() -> bool:
    """Starts the worker's /metrics on WORKER_METRICS_ADDR:WORKER_METRICS_PORT (a thread of the
    worker's main process, which forks its pool after this). Off unless the port is set."""
    if not settings.WORKER_METRICS_PORT:
        return False
    prometheus_client.start_http_server(
        settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_ADDR, registry=worker_registry()
    )
    logger.info("worker metrics on http://%s:%s/metrics", settings.WORKER_METRICS_ADDR, settings.WORKER_METRICS_PORT)
    return True


def _refusal(request: HttpRequest) -> str | None:
    """Why the guard refuses this caller, or None to let it scrape."""
    guard = settings.METRICS_GUARD
    if guard == "secret":
        given = request.headers.get("x-metrics-secret", "")
        if not given:
            return "missing x-metrics-secret header"
        if not hmac.compare_digest(given.encode(), settings.METRICS_GUARD_SECRET.encode()):
            return "wrong x-metrics-secret"
    elif guard == "cidr":
        address = ipaddress.ip_address(client_ip(request))
        if not any(address in network for network in settings.METRICS_GUARD_ALLOWLIST):
            return "caller not in METRICS_GUARD_ALLOWLIST"
    return None


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        raise Http404("Metrics are disabled (METRICS_ENABLED).")
    reason = _refusal(request)
    if reason:
        logger.warning(
            "metrics_guard refused a scrape: %s",
            reason,
            extra={"event": "metrics_guard", "guard": settings.METRICS_GUARD, "client_ip": client_ip(request)},
        )
        return HttpResponse(f"Forbidden: {reason}.\n", status=403, content_type="text/plain; charset=utf-8")
    body = prometheus_client.generate_latest(_Scrape())
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)


def count_request_exception(sender, request=None, **kwargs) -> None:
    """got_request_exception: Django is about to answer 500 for the exception being handled."""
    import sys

    exc = sys.exc_info()[1]
    if exc is not None:
        count_exception(exc)
