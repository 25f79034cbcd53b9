"""Fifty wrong passwords at once for one (username, IP) pair, on the real PostgreSQL."""

import threading

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connection
from django.test import Client

from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

checked: list[str] = []


class CountingHasher(MD5PasswordHasher):
    """MD5 (fast) that counts how many passwords were actually checked."""

    def verify(self, password, encoded):
        checked.append(password)
        return super().verify(password, encoded)


def test_fifty_concurrent_wrong_passwords_check_at_most_max_attempts(settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    settings.AUTH_LOGIN_MAX_ATTEMPTS = 5
    settings.AUTH_RATE_LIMIT = "1000/m"
    UserFactory(username="alice", role="responder")
    checked.clear()
    barrier = threading.Barrier(50)
    statuses: list[int] = []

    def guess(n: int) -> None:
        try:
            client = Client(REMOTE_ADDR="198.51.100.77")
            barrier.wait(timeout=30)
            response = client.post("/accounts/login/", {"username": "alice", "password": f"guess-{n}"})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(statuses) == 50
    assert len(checked) <= 5, f"{len(checked)} passwords were checked"
    assert statuses.count(429) >= 45 and set(statuses) <= {200, 429}
    assert AccessAttempt.objects.get(username="alice", ip_address="198.51.100.77").failures_since_start == 5
