"""Liveness and readiness probes.

/health answers 200 while the process can serve a request, and touches nothing else: an
orchestrator that restarts a web process on a failed liveness probe must not restart healthy
ones because the database or Redis is down. /ready checks every dependency the portal needs to do
useful work — database, cache, Celery broker — and answers 503 with the failing ones named, so a
load balancer takes the instance out and a human sees why. The checks run side by side and
/ready answers within READY_TIMEOUT seconds whatever they do: one that has not answered by then
is reported as failing ("no answer within ...").
"""

import logging
import re
import threading
import time
import uuid

from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from opsportal import broker
from opsportal.celery import app as celery_app

logger = logging.getLogger(__name__)
READY_TIMEOUT = 1.5  # seconds: the answer (with its own overhead) stays under the 2 s a probe typically allows
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def _mask(message: str) -> str:
    """Strip credentials from any URL in an error message."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", message)[:300]


def check_database() -> None:
    try:
        for alias in connections:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
    finally:
        connections.close_all()  # the check runs in a thread of its own: leave no connection behind


def check_cache() -> None:
    key = f"ready-probe-{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)


def check_broker() -> None:
    broker.ping(celery_app)


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


@never_cache
@require_GET
def health(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request):
    outcomes: dict = {}
    threads = [
        threading.Thread(target=_run_check, args=(name, check, outcomes), daemon=True, name=f"ready-{name}")
        for name, check in CHECKS.items()
    ]
    deadline = time.monotonic() + READY_TIMEOUT
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    results, failing = {}, []
    for name in CHECKS:
        result = outcomes.get(name) or {"ok": False, "error": f"no answer within {READY_TIMEOUT} s"}
        results[name] = result
        if not result["ok"]:
            failing.append(name)
    body = {"status": "fail" if failing else "ok", "failing": failing, "checks": results}
    return JsonResponse(body, status=503 if failing else 200)


def _run_check(name: str, check, outcomes: dict) -> None:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure makes the dependency "down"
        error = _mask(f"{type(exc).__name__}: {exc}")
        logger.warning("readiness check %s failed: %s", name, error)
        outcomes[name] = {"ok": False, "error": error}
    else:
        outcomes[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
