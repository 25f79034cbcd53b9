"""DRF throttles keyed on the real client IP (opsportal.client_ip), rates from the environment.

`anon` and `user` are the API's defaults (REST_FRAMEWORK DEFAULT_THROTTLE_CLASSES). The lead
throttles guard the public problem-report intake, per client IP whoever is signed in, under the
names the ThrottleDisabledOrNotWorking runbook looks for. All keep their history in the default
cache: Redis in production, shared by every worker.

When the cache cannot be reached, the API's throttles let requests through (an outage of Redis
must not take the API down with it) while the public intake refuses them with 503: it is the
one endpoint anyone on the internet can write to. Both are logged and counted
(rate_limiter_errors_total).
"""

import logging

from django.http import HttpRequest
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from opsportal import metrics
from opsportal.client_ip import client_key

logger = logging.getLogger(__name__)


class CacheUnavailable(Exception):
    """The throttle could not read or write its history."""


class ClientIPMixin:
    fail_open = True

    def get_ident(self, request) -> str:
        return client_key(request)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # any cache client error means "history unknown"
            metrics.rate_limiter_errors_total.labels(limiter=self.scope).inc()
            logger.error("throttle %s could not reach the cache: %s", self.scope, type(exc).__name__)
            if self.fail_open:
                return True
            raise CacheUnavailable(self.scope) from exc


class AnonThrottle(ClientIPMixin, AnonRateThrottle):
    pass


class UserThrottle(ClientIPMixin, UserRateThrottle):
    pass


class _LeadThrottle(ClientIPMixin, SimpleRateThrottle):
    fail_open = False

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LeadBurstThrottle(_LeadThrottle):
    scope = "lead_burst"


class LeadHourlyThrottle(_LeadThrottle):
    scope = "lead_hourly"


LEAD_THROTTLES = [LeadBurstThrottle, LeadHourlyThrottle]


def lead_throttle_wait(request: HttpRequest) -> float | None:
    """For the portal form: run the lead throttles like a DRF view would; seconds to wait, or None."""
    waits = []
    for throttle_class in LEAD_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1)
    return max(waits) if waits else None
