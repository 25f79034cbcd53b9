"""DRF's default throttles: per user when signed in, per client IP when not; rates from settings."""

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from opsportal.throttles import AnonThrottle, UserThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(monkeypatch):
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    monkeypatch.setattr(AnonThrottle, "THROTTLE_RATES", {"anon": "2/minute"})


def test_the_defaults_are_configured():
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == [
        "opsportal.throttles.AnonThrottle",
        "opsportal.throttles.UserThrottle",
    ]
    assert AnonThrottle().get_rate() == "60/minute" and UserThrottle().get_rate() == "600/minute"


def test_signed_in_users_are_throttled_per_user(low_rates, responder, viewer):
    alice = APIClient(REMOTE_ADDR="198.51.100.140")
    alice.force_authenticate(responder)
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [alice.get("/api/incidents/").status_code for _ in range(4)]
        victor = APIClient(REMOTE_ADDR="198.51.100.140")
        victor.force_authenticate(viewer)
        other_user_same_ip = victor.get("/api/incidents/")
        refused = alice.get("/api/incidents/")
    assert statuses == [200, 200, 200, 429]
    assert other_user_same_ip.status_code == 200
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_anonymous_clients_are_throttled_per_ip(low_rates):
    def token(ip):
        return APIClient(REMOTE_ADDR=ip).post("/api/auth/token/", {"username": "x", "password": "y"}, format="json")

    with time_machine.travel(timezone.now(), tick=False):
        statuses = [token("198.51.100.141").status_code for _ in range(3)]
        elsewhere = token("198.51.100.142")
    assert statuses == [400, 400, 429] and elsewhere.status_code == 400


def test_the_api_keeps_answering_when_the_cache_is_down(low_rates, responder, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(cache, "get", broken)
    client = APIClient(REMOTE_ADDR="198.51.100.143")
    client.force_authenticate(responder)
    assert [client.get("/api/incidents/").status_code for _ in range(5)] == [200] * 5
