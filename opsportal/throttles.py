"""DRF throttles keyed on the real client IP (opsportal.client_ip), rates from the environment.

`anon` and `user` are the API's defaults (REST_FRAMEWORK DEFAULT_THROTTLE_CLASSES). The lead
throttles guard the public problem-report intake, per client IP whoever is signed in, under the
names the ThrottleDisabledOrNotWorking runbook looks for. All keep their history in the default
cache: Redis in production, shared by every worker.

On Redis the lead throttles keep their history as a sorted set checked and extended by one Lua
script (AtomicSlidingWindow): DRF's own throttle reads the history and writes it back, so a burst
of concurrent requests can all read "4 of 5" and all pass. Elsewhere (the embedded file cache,
one host) DRF's history is used as is.

When the cache cannot be reached, the API's throttles let requests through (an outage of Redis
must not take the API down with it) while the public intake refuses them with 503: it is the
one endpoint anyone on the internet can write to. Both are logged and counted
(rate_limiter_errors_total).
"""

import logging
import uuid

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


# Drops what left the window, then records this request only if the window has room; returns
# {allowed, the oldest timestamp still in the window}. One script: Redis runs it atomically.
_SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local allowed = 0
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {allowed, oldest[2] or ARGV[1]}
"""


class AtomicSlidingWindow:
    """DRF's sliding window, decided and recorded in one step on Redis (see the module docstring)."""

    def allow_request(self, request, view) -> bool:
        client = _redis_client()
        if client is None or self.rate is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        self.now = self.timer()
        member = f"{self.now:.6f}:{uuid.uuid4().hex}"
        key = self.cache.make_key(f"{self.key}:window")
        allowed, oldest = client.eval(_SLIDING_WINDOW, 1, key, self.now, self.duration, self.num_requests, member)
        self.oldest = float(oldest)
        return True if allowed else self.throttle_failure()

    def wait(self) -> float:
        oldest = getattr(self, "oldest", None)
        if oldest is None:
            return super().wait()
        return max(self.duration - (self.now - oldest), 1.0)  # until the oldest request leaves the window


def _redis_client():
    """The default cache's Redis client, or None when the cache is not django-redis."""
    from django.core.cache import caches

    if not type(caches["default"]).__module__.startswith("django_redis"):
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


class _LeadThrottle(ClientIPMixin, AtomicSlidingWindow, SimpleRateThrottle):
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
