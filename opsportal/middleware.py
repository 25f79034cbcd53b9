import contextlib
import logging
import time
import zoneinfo
from urllib.parse import unquote

from django.utils import timezone

from opsportal import metrics
from opsportal.client_ip import client_ip
from opsportal.logging import new_request_id, request_context

request_logger = logging.getLogger("opsportal.request")


class UserTimezoneMiddleware:
    """Shows times in the browser's time zone: static/js/portal.js stores it in the `tz` cookie."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        timezone.deactivate()
        name = unquote(request.COOKIES.get("tz", ""))
        if name:
            with contextlib.suppress(zoneinfo.ZoneInfoNotFoundError, ValueError):
                timezone.activate(zoneinfo.ZoneInfo(name))
        return self.get_response(request)


class RequestObservabilityMiddleware:
    """Request id, one JSON log line and the http_requests_total sample for every request.

    Placed first, so redirects and errors from the other middleware are counted and logged too.
    """

    QUIET_ROUTES = {"health", "ready", "metrics"}  # probes and scrapes: logged at DEBUG only

    def __init__(self, get_response):
        self.get_response = get_response

    def process_view(self, request, view_func, view_args, view_kwargs):
        context = request_context.get()
        if context is not None:
            context["route"] = metrics.request_route(request)

    def __call__(self, request):
        request_id = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        context = {"request_id": request_id, "method": request.method, "_request": request}
        token = request_context.set(context)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            route = metrics.request_route(request)
            context["route"] = route
            metrics.observe_request(request.method, route, response.status_code)
            response["X-Request-ID"] = request_id
            level = logging.ERROR if response.status_code >= 500 else logging.INFO
            if route in self.QUIET_ROUTES and response.status_code < 400:
                level = logging.DEBUG
            request_logger.log(
                level,
                "%s %s %s",
                request.method,
                route,
                response.status_code,
                extra={
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "client_ip": client_ip(request),
                },
            )
            return response
        finally:
            request_context.reset(token)
