"""Password reset: off unless e-mail is delivered; when on, limited per IP, the same answer for any
address, and the reset link never reaches a log."""

import re

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CONSOLE = "django.core.mail.backends.console.EmailBackend"
SMTP = "django.core.mail.backends.smtp.EmailBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"  # stands in for SMTP: delivers, to mail.outbox
RESET_PATHS = [
    "/accounts/password_reset/",
    "/accounts/password_reset/done/",
    "/accounts/reset/MQ/abc-123def/",
    "/accounts/reset/done/",
]


@pytest.fixture
def delivering(settings):
    settings.EMAIL_BACKEND = LOCMEM
    settings.PORTAL_BASE_URL = "https://ops.example.com"
    settings.AUTH_RATE_LIMIT = "3/m"


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice", role="responder")
    user.email = "alice@example.com"
    user.save()
    return user


@pytest.mark.parametrize("backend", [CONSOLE, "django.core.mail.backends.dummy.EmailBackend"])
def test_without_a_delivering_backend_reset_pages_are_404_and_unlinked(settings, client, alice, backend):
    settings.EMAIL_BACKEND = backend
    for path in RESET_PATHS:
        assert client.get(path).status_code == 404, path
    response = client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    assert response.status_code == 404 and mail.outbox == []
    login = client.get("/accounts/login/").content.decode()
    assert "password_reset" not in login and "Forgot" not in login


def test_the_login_page_links_to_reset_when_mail_is_delivered(settings, client):
    settings.EMAIL_BACKEND = SMTP
    assert 'href="/accounts/password_reset/"' in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/password_reset/").status_code == 200


def test_the_answer_is_the_same_for_a_known_and_an_unknown_address(delivering, alice):
    known = Client(REMOTE_ADDR="198.51.100.70").post("/accounts/password_reset/", {"email": "alice@example.com"})
    unknown = Client(REMOTE_ADDR="198.51.100.71").post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password_reset/done/"
    assert known.content == unknown.content
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_the_whole_reset_leaves_no_link_in_the_logs_and_uses_the_portal_address(delivering, alice, json_logs):
    client = Client(REMOTE_ADDR="198.51.100.72", HTTP_HOST="localhost")
    client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    (message,) = mail.outbox
    link = re.search(r"https://ops\.example\.com(/accounts/reset/[^/]+/[^/]+/)", message.body)
    assert link, message.body  # from PORTAL_BASE_URL, not the request's Host
    uid, token = link.group(1).split("/")[3:5]
    form = client.get(link.group(1), follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "N3w-pass-for-tests!", "new_password2": "N3w-pass-for-tests!"}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    alice.refresh_from_db()
    assert alice.check_password("N3w-pass-for-tests!")
    paths = [r["path"] for r in json_logs.records if r["logger"] == "opsportal.request"]
    assert f"/accounts/reset/{uid}/[redacted]/" in paths
    assert token not in json_logs.text
    # The link works once.
    assert "This link is invalid" in client.get(link.group(1), follow=True).content.decode()


def test_a_reset_link_in_a_404_warning_is_masked_too(delivering, json_logs):
    Client().get("/accounts/reset/MQ/secret-reset-token-123/extra/")
    assert "secret-reset-token-123" not in json_logs.text
    assert any(r["logger"] == "django.request" for r in json_logs.records)


def test_reset_requests_share_the_sign_in_limiter_per_ip(delivering, alice):
    client = Client(REMOTE_ADDR="198.51.100.73")
    with time_machine.travel(timezone.now(), tick=False):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        for n in range(2):
            assert client.post("/accounts/password_reset/", {"email": f"x{n}@example.com"}).status_code == 302
        refused = client.post("/accounts/password_reset/", {"email": "alice@example.com"})
        assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
        assert "Too many attempts from your network" in refused.content.decode()
        assert mail.outbox == []
        # Guessing reset tokens counts too; another address is not affected.
        assert client.post("/accounts/reset/MQ/abc-123def/", {}).status_code == 429
        assert (
            Client(REMOTE_ADDR="198.51.100.74")
            .post("/accounts/password_reset/", {"email": "alice@example.com"})
            .status_code
            == 302
        )
