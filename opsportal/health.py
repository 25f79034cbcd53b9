"""Liveness and readiness probes.

/health answers 200 while the process can serve a request. /ready checks every dependency the
portal needs to do useful work — database, cache, Celery broker — and answers 503 with the
failing ones named, so a load balancer takes the instance out and a human sees why.
"""

import logging
import re
import time
import uuid

from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from opsportal.celery import app as celery_app

logger = logging.getLogger(__name__)
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def _mask(message: str) -> str:
    """Strip credentials from any URL in an error message."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", message)[:300]


def check_database() -> None:
    for alias in connections:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")


def check_cache() -> None:
    key = f"ready-probe-{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)


def check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        _ = conn.default_channel  # opens a channel: proves the transport really answers


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


@never_cache
@require_GET
def health(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request):
    results, failing = {}, []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure makes the dependency "down"
            error = _mask(f"{type(exc).__name__}: {exc}")
            logger.warning("readiness check %s failed: %s", name, error)
            results[name] = {"ok": False, "error": error}
            failing.append(name)
        else:
            results[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    body = {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
    return JsonResponse(body, status=503 if failing else 200)
