"""Sign-in lockout per (username, client IP): window, lock, expiry, unlock, no enumeration."""

import itertools
import re
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from opsportal import metrics
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
_ips = (f"198.51.100.{n}" for n in itertools.count(1))


def client_from(ip: str | None = None) -> Client:
    return Client(REMOTE_ADDR=ip or next(_ips))


def attempt(client: Client, username: str = "alice", password: str = "wrong"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def error_text(response) -> str:
    match = re.search(r'<p class="error"[^>]*>(.*?)</p>', response.content.decode(), re.S)
    return match.group(1).strip()


def sample(counter, **labels) -> float:
    return (counter.labels(**labels) if labels else counter)._value.get()


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", role="responder")


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.AUTH_LOGIN_MAX_ATTEMPTS = 5
    settings.AUTH_LOGIN_ATTEMPT_WINDOW_MINUTES = 15
    settings.AUTH_LOGIN_LOCKOUT_MINUTES = 15
    settings.AUTH_RATE_LIMIT = "1000/m"


def test_fifth_failure_locks_the_pair_with_429_and_retry_after(alice):
    client = client_from()
    lockouts = sample(metrics.auth_lockouts_total)
    for _ in range(4):
        response = attempt(client)
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    response = attempt(client)
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert sample(metrics.auth_lockouts_total) == lockouts + 1

    # Locked: even the right password is refused, and not checked.
    response = attempt(client, password="pw-for-tests")
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    row = AccessAttempt.objects.get(username="alice")
    assert row.failures_since_start == 5


def test_a_locked_pair_does_not_lock_the_user_out_from_elsewhere(alice):
    attacker = client_from()
    for _ in range(5):
        attempt(attacker)
    assert attempt(attacker).status_code == 429
    colleague = client_from()
    response = attempt(colleague, password="pw-for-tests")
    assert response.status_code == 302 and colleague.session["_auth_user_id"] == str(alice.pk)


def test_unknown_and_known_usernames_are_answered_alike(alice):
    known, unknown = client_from(), client_from()
    known_bodies = [attempt(known, "alice") for _ in range(6)]
    unknown_bodies = [attempt(unknown, "nobody-by-this-name") for _ in range(6)]
    assert [r.status_code for r in known_bodies] == [r.status_code for r in unknown_bodies] == [200] * 4 + [429] * 2
    # Same words and same wait.
    for k, u in zip(known_bodies, unknown_bodies, strict=True):
        assert error_text(k) == error_text(u)
        assert k.get("Retry-After") == u.get("Retry-After")


def test_failures_outside_the_window_are_forgotten(alice):
    client = client_from()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(4):
            attempt(client)
        traveller.shift(timedelta(minutes=15, seconds=1))
        # The window closed: counting starts again, four more failures are not a lockout.
        for _ in range(4):
            assert attempt(client).status_code == 200
        assert AccessAttempt.objects.get(username="alice").failures_since_start == 4
        assert attempt(client).status_code == 429


def test_the_lock_expires_after_the_lockout_period(alice, settings):
    settings.AUTH_LOGIN_LOCKOUT_MINUTES = 30
    client = client_from()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(5):
            attempt(client)
        traveller.shift(timedelta(minutes=29))
        response = attempt(client, password="pw-for-tests")
        assert response.status_code == 429 and int(response["Retry-After"]) == 60
        traveller.shift(timedelta(minutes=1, seconds=1))
        assert attempt(client, password="pw-for-tests").status_code == 302


def test_success_clears_the_pairs_failures(alice):
    client = client_from()
    for _ in range(4):
        attempt(client)
    assert attempt(client, password="pw-for-tests").status_code == 302
    assert not AccessAttempt.objects.filter(username="alice").exists()


def test_unlock_command_clears_every_ip_or_one(alice):
    first, second = client_from("198.51.100.201"), client_from("198.51.100.202")
    for client in (first, second):
        for _ in range(5):
            attempt(client)
    unlocks = sample(metrics.auth_unlocks_total, via="command")

    call_command("unlock", "alice", "--ip", "198.51.100.201")
    assert attempt(first, password="pw-for-tests").status_code == 302
    assert attempt(second, password="pw-for-tests").status_code == 429

    call_command("unlock", "alice")
    assert attempt(second, password="pw-for-tests").status_code == 302
    assert sample(metrics.auth_unlocks_total, via="command") == unlocks + 2


def test_unlock_command_refuses_a_bad_ip_and_says_when_nothing_was_locked(capsys):
    with pytest.raises(CommandError, match="not an IP address"):
        call_command("unlock", "alice", "--ip", "nope")
    call_command("unlock", "nobody")
    assert "nothing to do" in capsys.readouterr().out


def test_admins_see_the_lockout_table_and_delete_a_row_to_unlock(alice, admin_user, client):
    attacker = client_from("198.51.100.210")
    for _ in range(5):
        attempt(attacker)
    row = AccessAttempt.objects.get(username="alice")
    client.force_login(admin_user)
    listing = client.get("/admin/opsportal/lockout/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "alice" in body and "198.51.100.210" in body and "Lockout table" in body
    unlocks = sample(metrics.auth_unlocks_total, via="admin")
    response = client.post(f"/admin/opsportal/lockout/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert sample(metrics.auth_unlocks_total, via="admin") == unlocks + 1
    assert attempt(attacker, password="pw-for-tests").status_code == 302


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_the_lockout_table_is_for_admins_only(client, user_for, role):
    client.force_login(user_for(role))
    assert client.get("/admin/opsportal/lockout/").status_code == 302  # to the admin login


def test_the_api_token_login_obeys_the_same_lockout(alice, admin_user):
    api = client_from()
    for _ in range(4):
        response = api.post(
            "/api/auth/token/", {"username": "alice", "password": "nope"}, content_type="application/json"
        )
        assert response.status_code == 400
    response = api.post("/api/auth/token/", {"username": "alice", "password": "nope"}, content_type="application/json")
    assert response.status_code == 429 and response["Retry-After"] == "900"
    assert "Too many failed sign-in attempts" in response.json()["detail"]
    good = api.post(
        "/api/auth/token/", {"username": "alice", "password": "pw-for-tests"}, content_type="application/json"
    )
    assert good.status_code == 429
    elsewhere = client_from().post(
        "/api/auth/token/", {"username": "alice", "password": "pw-for-tests"}, content_type="application/json"
    )
    assert elsewhere.status_code == 200 and len(elsewhere.json()["token"]) == 40


def test_token_login_needs_both_fields(alice):
    response = client_from().post("/api/auth/token/", {"username": "alice"}, content_type="application/json")
    assert response.status_code == 400 and "password" in response.json()


def test_success_and_failures_are_counted(alice):
    client = client_from()
    successes = sample(metrics.auth_success_total)
    invalid = sample(metrics.auth_failures_total, reason="invalid_credentials")
    locked = sample(metrics.auth_failures_total, reason="locked_out")
    attempt(client, password="pw-for-tests")
    for _ in range(6):
        attempt(client)
    assert sample(metrics.auth_success_total) == successes + 1
    assert sample(metrics.auth_failures_total, reason="invalid_credentials") == invalid + 5
    assert sample(metrics.auth_failures_total, reason="locked_out") == locked + 1
