"""The per-IP auth limiter: one address, any usernames, AUTH_RATE_LIMIT attempts."""

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from opsportal import metrics
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AUTH_RATE_LIMIT = "3/m"
    settings.AUTH_LOGIN_MAX_ATTEMPTS = 100


def post(client, username, password="wrong"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_spraying_many_usernames_from_one_ip_is_refused_with_retry_after():
    UserFactory(username="alice", role="responder")
    client = Client(REMOTE_ADDR="198.51.100.31")
    limited = metrics.auth_failures_total.labels(reason="rate_limited")._value.get()
    with time_machine.travel(timezone.now(), tick=False):
        for name in ("alice", "bob", "carol"):
            assert post(client, name).status_code == 200
        response = post(client, "dave")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "Too many sign-in attempts from your network" in response.content.decode()
    assert metrics.auth_failures_total.labels(reason="rate_limited")._value.get() == limited + 1
    # Refused before any password is checked: even the right one.
    assert post(client, "alice", "pw-for-tests").status_code == 429
    # Another address is not affected.
    assert post(Client(REMOTE_ADDR="198.51.100.32"), "alice", "pw-for-tests").status_code == 302


def test_a_forged_forwarded_for_header_does_not_reset_the_limit(settings):
    settings.TRUSTED_PROXY_COUNT, settings.TRUSTED_PROXY_CIDRS = 0, []
    client = Client(REMOTE_ADDR="198.51.100.33")
    with time_machine.travel(timezone.now(), tick=False):
        for n in range(3):
            client.post("/accounts/login/", {"username": f"u{n}", "password": "x"}, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}")
        response = client.post("/accounts/login/", {"username": "u9", "password": "x"}, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert response.status_code == 429


def test_the_limit_opens_again_in_the_next_window():
    client = Client(REMOTE_ADDR="198.51.100.34")
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for n in range(4):
            post(client, f"u{n}")
        assert post(client, "u5").status_code == 429
        traveller.shift(61)
        assert post(client, "u6").status_code == 200


def test_the_token_api_shares_the_limit_and_answers_json():
    client = Client(REMOTE_ADDR="198.51.100.35")
    with time_machine.travel(timezone.now(), tick=False):
        for n in range(3):
            post(client, f"u{n}")
        response = client.post("/api/auth/token/", {"username": "x", "password": "y"}, content_type="application/json")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["detail"].startswith("Too many sign-in attempts from your network")


def test_signing_in_still_works_when_the_cache_is_down(monkeypatch):
    UserFactory(username="alice", role="responder")

    def broken(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(cache, "add", broken)
    errors = metrics.rate_limiter_errors_total.labels(limiter="auth")._value.get()
    response = post(Client(REMOTE_ADDR="198.51.100.36"), "alice", "pw-for-tests")
    assert response.status_code == 302
    assert metrics.rate_limiter_errors_total.labels(limiter="auth")._value.get() == errors + 1


def test_get_requests_are_not_counted():
    client = Client(REMOTE_ADDR="198.51.100.37")
    for _ in range(10):
        assert client.get("/accounts/login/").status_code == 200
    assert post(client, "alice").status_code == 200
