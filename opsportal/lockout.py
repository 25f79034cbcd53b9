"""Login lockout per (username, client IP) on django-axes' database tables.

Policy (README "Sign-in protection"): failed sign-ins are counted per (username, client IP)
for AUTH_LOGIN_ATTEMPT_WINDOW_MINUTES from the first failure; at AUTH_LOGIN_MAX_ATTEMPTS the
pair is locked for AUTH_LOGIN_LOCKOUT_MINUTES. Other IPs can still sign in as that user, so
an attacker cannot lock a colleague out from elsewhere; the per-IP limiter (opsportal.auth)
caps how many usernames one address can try.

Why a handler of our own on top of axes' database handler: axes checks the count, lets the
password be verified, and only then records the failure. Fifty concurrent wrong passwords all
pass the check before the first failure is written, so all fifty passwords get tested. Here an
attempt is *reserved* before the password is checked — the row is locked (SELECT ... FOR UPDATE),
the count compared and incremented in one transaction — so at most AUTH_LOGIN_MAX_ATTEMPTS
passwords are ever checked per window, however many requests race. A success then deletes the
pair's row, as axes' AXES_RESET_ON_SUCCESS does. Axes also keys rows by user agent, which an
attacker picks freely; here the row's user agent is always empty, so the table's unique
constraint makes exactly one row per pair and the race to create it safe.
"""

import logging
import math
from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt, AccessAttemptExpiration
from axes.signals import user_locked_out
from django.conf import settings
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from opsportal import metrics

logger = logging.getLogger("opsportal.auth")


def window() -> timedelta:
    return timedelta(minutes=settings.AUTH_LOGIN_ATTEMPT_WINDOW_MINUTES)


def lockout_period() -> timedelta:
    return timedelta(minutes=settings.AUTH_LOGIN_LOCKOUT_MINUTES)


class LockoutHandler(AxesDatabaseHandler):
    def is_allowed(self, request, credentials: dict | None = None) -> bool:
        if self.is_blacklisted(request, credentials):
            return False
        if self.is_whitelisted(request, credentials):
            return True
        return self._reserve_attempt(request, credentials)

    def _reserve_attempt(self, request, credentials) -> bool:
        """Count this attempt before its password is checked; False when the pair is locked."""
        username = get_client_username(request, credentials)
        now = request.axes_attempt_time
        limit = settings.AUTH_LOGIN_MAX_ATTEMPTS
        with transaction.atomic(using=router.db_for_write(AccessAttempt)):
            attempt, _ = AccessAttempt.objects.select_for_update().get_or_create(
                username=username,
                ip_address=request.axes_ip_address,
                user_agent="",
                defaults={"failures_since_start": 0, "attempt_time": now, "get_data": "", "post_data": ""},
            )
            expiration = AccessAttemptExpiration.objects.filter(access_attempt=attempt).first()
            if expiration is not None and expiration.expires_at <= now:
                attempt.failures_since_start = 0  # the window (or lockout) is over: start afresh
                expiration = None
            if attempt.failures_since_start >= limit:
                request.axes_locked_out = True
                request.lockout_until = expiration.expires_at if expiration else now + lockout_period()
                return False
            attempt.failures_since_start += 1
            attempt.attempt_time = now
            attempt.path_info = request.axes_path_info
            attempt.http_accept = request.axes_http_accept
            attempt.save()
            if expiration is None:
                AccessAttemptExpiration.objects.update_or_create(
                    access_attempt=attempt, defaults={"expires_at": now + window()}
                )
        request.lockout_reserved = attempt.failures_since_start
        return True

    def get_failures(self, request, credentials: dict | None = None) -> int:
        attempt = (
            AccessAttempt.objects.filter(
                username=get_client_username(request, credentials),
                ip_address=request.axes_ip_address,
                user_agent="",
                expiration__expires_at__gt=timezone.now(),
            )
            .only("failures_since_start")
            .first()
        )
        return attempt.failures_since_start if attempt else 0

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None:
            return
        username = get_client_username(request, credentials)
        fields = {"event": "auth.failure", "username": username, "client_ip": request.axes_ip_address}
        if request.axes_locked_out:
            metrics.auth_failures_total.labels(reason="locked_out").inc()
            logger.warning("sign-in refused: pair is locked out", extra={**fields, "reason": "locked_out"})
            return
        failures = getattr(request, "lockout_reserved", None)
        if failures is None:  # authenticate() ran without the axes backend reserving first
            if not self._reserve_attempt(request, credentials):
                return self.user_login_failed(sender, credentials, request, **kwargs)
            failures = request.lockout_reserved
        metrics.auth_failures_total.labels(reason="invalid_credentials").inc()
        logger.warning(
            "sign-in failed",
            extra={**fields, "reason": "invalid_credentials", "failures": failures, "user_agent": _agent(request)},
        )
        if failures >= settings.AUTH_LOGIN_MAX_ATTEMPTS:
            self._lock(request, credentials, username)

    def _lock(self, request, credentials, username) -> None:
        until = timezone.now() + lockout_period()
        AccessAttemptExpiration.objects.filter(
            access_attempt__username=username, access_attempt__ip_address=request.axes_ip_address
        ).update(expires_at=until)
        request.axes_locked_out = True
        request.axes_credentials = credentials
        request.lockout_until = until
        metrics.auth_lockouts_total.inc()
        logger.warning(
            "sign-in locked for %s minutes after %s failures",
            settings.AUTH_LOGIN_LOCKOUT_MINUTES,
            settings.AUTH_LOGIN_MAX_ATTEMPTS,
            extra={"event": "auth.lockout", "username": username, "client_ip": request.axes_ip_address},
        )
        user_locked_out.send("axes", request=request, username=username, ip_address=request.axes_ip_address)

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        metrics.auth_success_total.inc()
        logger.info(
            "signed in",
            extra={"event": "auth.success", "username": user.get_username(), "client_ip": request.axes_ip_address},
        )


def _agent(request) -> str:
    return (request.axes_user_agent or "")[:200]


def seconds_left(request: HttpRequest) -> int:
    until = getattr(request, "lockout_until", None) or timezone.now() + lockout_period()
    return max(math.ceil((until - timezone.now()).total_seconds()), 1)


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def too_many_attempts(request: HttpRequest, *, message: str, retry_after: int) -> HttpResponse:
    """429 with Retry-After: JSON for the API, the login page (with the message) for browsers."""
    if wants_json(request):
        response = JsonResponse({"detail": message, "retry_after": retry_after}, status=429)
    else:
        from django.contrib.auth.forms import AuthenticationForm

        context = {"form": AuthenticationForm(request), "refusal": message, "next": request.POST.get("next", "")}
        response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE. The same words whether or not the username exists."""
    retry_after = seconds_left(request)
    minutes = math.ceil(retry_after / 60)
    message = (
        f"Too many failed sign-in attempts for this username from your network. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an admin to unlock it."
    )
    return too_many_attempts(request, message=message, retry_after=retry_after)


def unlock(username: str, ip_address: str | None = None, *, via: str) -> int:
    """Delete the pair rows of `username` (from one client IP only, if given); how many were cleared."""
    attempts = AccessAttempt.objects.filter(username=username)
    if ip_address:
        attempts = attempts.filter(ip_address=ip_address)
    _, deleted = attempts.delete()
    count = deleted.get(AccessAttempt._meta.label, 0)
    record_unlock(count, via=via, username=username, ip_address=ip_address)
    return count


def record_unlock(count: int, *, via: str, username: str | None, ip_address: str | None = None) -> None:
    if not count:
        return
    metrics.auth_unlocks_total.labels(via=via).inc(count)
    logger.warning(
        "sign-in lockout cleared",
        extra={"event": "auth.unlock", "via": via, "username": username, "client_ip": ip_address, "rows": count},
    )
