"""Maintenance mode: while on, pages and the API answer 503 with Retry-After, except the probes,
the metrics, the ops API and console (to switch it off) and the alert intake (alerts are still stored).

The switch is a database row (ops.MaintenanceSwitch); every process reads a copy in the shared
cache, refilled from the row when the cache has lost it (a flush, a restart of Redis).
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from ops.models import MaintenanceSwitch

logger = logging.getLogger(__name__)

CACHE_KEY = "ops:maintenance"
COPY_TTL = 60  # seconds: the row is re-read at least this often, so a stray copy cannot outlive it
EXEMPT_PREFIXES = ("/health", "/ready", "/metrics", "/api/ops/", "/ops/", "/api/integrations/", "/static/")
EXEMPT_PREFIXES_ADMIN = ("/admin/", "/accounts/")


def remember(enabled: bool) -> None:
    try:
        cache.set(CACHE_KEY, "on" if enabled else "off", timeout=COPY_TTL)
    except Exception as exc:  # noqa: BLE001 - the row is the truth; the next request reads it
        logger.warning("could not cache the maintenance switch: %s", exc)


def is_on() -> bool:
    try:
        value = cache.get(CACHE_KEY)
    except Exception:  # noqa: BLE001 - no cache: ask the database
        value = None
    if value is None:
        enabled = MaintenanceSwitch.current().enabled
        remember(enabled)
        return enabled
    return value == "on"


def exempt(path: str) -> bool:
    return path.startswith(EXEMPT_PREFIXES) or path.startswith(EXEMPT_PREFIXES_ADMIN)


class MaintenanceModeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if exempt(request.path) or not is_on():
            return self.get_response(request)
        retry = str(settings.MAINTENANCE_RETRY_AFTER)
        message = "Ops Portal is in maintenance; try again shortly."
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(
                render_to_string("ops/maintenance.html", {"message": message}, request=request), status=503
            )
        response["Retry-After"] = retry
        return response
