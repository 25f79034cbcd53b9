"""Sign-in endpoints: the portal's login page, the API's token login and the password reset, behind
the same guards.

1. The per-IP auth limiter (django-ratelimit, AUTH_RATE_LIMIT, all usernames together): one
   address cannot spray passwords across many accounts. Answers 429 with Retry-After. The
   password-reset pages count against the same limit: asking for links and trying reset tokens
   are sign-in attempts too.
2. The (username, client IP) lockout (django-axes with opsportal.lockout.LockoutHandler).

Password reset exists only when the portal can deliver e-mail (`password_reset_enabled`): with the
console backend the link would be printed to stdout, where anyone who reads the logs could use
it. Off, its pages answer 404 and no page links to them. On, the answer is the same whether or
not the address belongs to anyone, and the reset token never reaches a log (opsportal/logging.py
masks it in every path).
"""

import logging

from django.conf import settings
from django.contrib.auth import authenticate, user_logged_in
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django_ratelimit.core import get_usage
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal import metrics
from opsportal.client_ip import client_ip, ratelimit_key
from opsportal.lockout import lockout_response, too_many_attempts
from opsportal.models import ApiToken
from opsportal.tokens import HashedTokenAuthentication

logger = logging.getLogger("opsportal.auth")


def auth_rate_limited(request: HttpRequest) -> int | None:
    """Count this sign-in attempt against its client IP; seconds to wait when over AUTH_RATE_LIMIT."""
    try:
        usage = get_usage(
            request, group="auth", key=ratelimit_key, rate=settings.AUTH_RATE_LIMIT, method=["POST"], increment=True
        )
    except Exception as exc:  # noqa: BLE001 - the cache is down: the DB lockout still holds, so fail open
        metrics.rate_limiter_errors_total.labels(limiter="auth").inc()
        logger.error("auth limiter unavailable, allowing the attempt: %s", type(exc).__name__)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    metrics.auth_failures_total.labels(reason="rate_limited").inc()
    logger.warning(
        "sign-in refused by the per-IP limiter",
        extra={"event": "auth.failure", "reason": "rate_limited", "client_ip": client_ip(request)},
    )
    return max(int(usage["time_left"]), 1)


def _limited_message(wait: int) -> str:
    return f"Too many sign-in attempts from your network. Wait {wait} seconds and try again."


# Backends that deliver nothing to the user: the console one prints the message (and its reset
# link) into the logs, the dummy one drops it.
_UNDELIVERED_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


def password_reset_enabled() -> bool:
    """True when EMAIL_BACKEND actually delivers mail, so a reset link reaches only its owner."""
    return settings.EMAIL_BACKEND not in _UNDELIVERED_EMAIL_BACKENDS


class _PasswordResetGuard:
    """404 while password reset is off; the per-IP sign-in limiter on every POST."""

    template_name: str

    def dispatch(self, request, *args, **kwargs):
        if not password_reset_enabled():
            raise Http404("Password reset is not available: the portal sends no e-mail.")
        if request.method == "POST":
            wait = auth_rate_limited(request)
            if wait is not None:
                message = f"Too many attempts from your network. Wait {wait} seconds and try again."
                response = render(request, self.template_name, {"refusal": message}, status=429)
                response["Retry-After"] = str(wait)
                return response
        return super().dispatch(request, *args, **kwargs)


class PasswordResetView(_PasswordResetGuard, auth_views.PasswordResetView):
    """Asks for an address; answers with the same page whether or not an account has it."""

    success_url = reverse_lazy("password_reset_done")
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form):
        # The link starts with PORTAL_BASE_URL, never with the request's (caller-chosen) Host header.
        self.extra_email_context = {"portal_base_url": settings.PORTAL_BASE_URL.rstrip("/")}
        return super().form_valid(form)


class PasswordResetDoneView(_PasswordResetGuard, auth_views.PasswordResetDoneView):
    pass


class PasswordResetConfirmView(_PasswordResetGuard, auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")


class PasswordResetCompleteView(_PasswordResetGuard, auth_views.PasswordResetCompleteView):
    pass


class LoginView(auth_views.LoginView):
    """Django's login page (same URL, same `username`/`password` fields) behind the per-IP limiter."""

    def post(self, request, *args, **kwargs):
        wait = auth_rate_limited(request)
        if wait is not None:
            return too_many_attempts(request, message=_limited_message(wait), retry_after=wait)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "password_reset_enabled": password_reset_enabled()}


class TokenLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenLoginView(APIView):
    """POST /api/auth/token/ {username, password} → {token}: for scripts; same lockout as the login page.

    Each sign-in issues a new key, shown in this answer only (the portal keeps its hash); earlier
    keys stay valid until an admin deletes them, or their holder does with DELETE.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenLoginSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
    )
    def post(self, request) -> HttpResponse:
        wait = auth_rate_limited(request._request)
        if wait is not None:
            return too_many_attempts(request._request, message=_limited_message(wait), retry_after=wait)
        payload = TokenLoginSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        django_request = request._request
        user = authenticate(django_request, **payload.validated_data)
        if user is None:
            if getattr(django_request, "axes_locked_out", False):
                return lockout_response(django_request)
            return Response(
                {"detail": "Unable to sign in with the provided credentials."}, status=status.HTTP_400_BAD_REQUEST
            )
        user_logged_in.send(sender=type(user), request=django_request, user=user)
        _, key = ApiToken.issue(user)
        return Response({"token": key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request) -> HttpResponse:
        """DELETE /api/auth/token/ with `Authorization: Token <key>`: revoke that key."""
        # Authenticated here, not by authentication_classes: a stale key sent along with a sign-in
        # must not turn the POST into a 401.
        found = HashedTokenAuthentication().authenticate(request)
        if found is None:
            return Response(
                {"detail": "Send the key to revoke as Authorization: Token <key>."}, status=status.HTTP_400_BAD_REQUEST
            )
        found[1].delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
