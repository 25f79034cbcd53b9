"""API tokens are stored hashed and shown once; credentials in the admin are for the admin role only."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from incidents.models import Integration, WebhookEndpoint
from opsportal.models import ApiToken
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


def as_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def stored_text() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM opsportal_apitoken")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM authtoken_token")
        rows += cursor.fetchall()
    return repr(rows)


def sign_in(username="alice"):
    return APIClient().post("/api/auth/token/", {"username": username, "password": "pw-for-tests"}, format="json")


def test_a_signed_in_script_gets_a_key_that_is_stored_only_as_a_hash(responder):
    first, second = sign_in().json()["token"], sign_in().json()["token"]
    assert first != second
    assert first not in stored_text() and second not in stored_text()
    assert ApiToken.objects.filter(user=responder).count() == 2
    for key in (first, second):
        assert as_key(key).get("/api/incidents/").status_code == 200
    token = ApiToken.objects.get(hint=first[:6])
    assert token.last_used_at is not None


def test_a_revoked_or_unknown_key_is_refused_with_what_to_do(responder):
    key = sign_in().json()["token"]
    assert as_key(key).delete("/api/auth/token/").status_code == 204
    response = as_key(key).get("/api/incidents/")
    assert response.status_code == 403  # DRF's answer when session auth comes first, as for any refusal
    assert "Keys are shown only once" in response.json()["detail"]
    assert "POST /api/auth/token/" in response.json()["detail"]
    assert APIClient().delete("/api/auth/token/").status_code == 400


def test_the_migration_hashes_existing_keys_and_they_keep_working(responder):
    migration = importlib.import_module("opsportal.migrations.0002_api_tokens_hashed")
    old = Token.objects.create(user=responder)
    migration.hash_existing_keys(apps, None)
    assert not Token.objects.exists()
    assert old.key not in stored_text()
    assert ApiToken.objects.get(user=responder).hint == old.key[:6]
    assert as_key(old.key).get("/api/incidents/").status_code == 200


def test_an_admin_issues_a_key_in_the_admin_and_sees_it_once(client, admin_user, responder):
    client.force_login(admin_user)
    response = client.post("/admin/opsportal/apitoken/add/", {"user": responder.pk})
    assert response.status_code == 200
    key = response.context["key"]
    assert key in response.content.decode() and "shown only this once" in response.content.decode()
    assert key not in stored_text()
    assert as_key(key).get("/api/incidents/").status_code == 200
    listing = client.get("/admin/opsportal/apitoken/").content.decode()
    assert key[:6] in listing and key not in listing


@pytest.fixture
def staff_responder(db):
    """A responder with the staff flag and every model permission: still not an admin."""
    user = UserFactory(username="carol", role="responder", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    return user


@pytest.mark.parametrize(
    "page",
    [
        "/admin/opsportal/apitoken/",
        "/admin/opsportal/apitoken/add/",
        "/admin/incidents/integration/",
        "/admin/incidents/integration/add/",
        "/admin/incidents/webhookendpoint/",
    ],
)
def test_staff_without_the_admin_role_cannot_open_credential_pages(client, staff_responder, page):
    client.force_login(staff_responder)
    assert client.get(page).status_code == 403


def test_staff_without_the_admin_role_cannot_see_or_touch_them_by_id(client, staff_responder, responder):
    token, _ = ApiToken.issue(responder)
    integration, _ = Integration.create(name="prod", kind="alertmanager")
    endpoint = WebhookEndpoint.objects.create(name="chat", url="https://hooks.example.com/x", secret="s3cr3t-signing")
    client.force_login(staff_responder)
    for path in (
        f"/admin/opsportal/apitoken/{token.pk}/change/",
        f"/admin/opsportal/apitoken/{token.pk}/delete/",
        f"/admin/incidents/integration/{integration.pk}/change/",
        f"/admin/incidents/webhookendpoint/{endpoint.pk}/change/",
    ):
        assert client.get(path).status_code in (302, 403), path
        assert client.post(path, {"post": "yes"}).status_code in (302, 403), path
    assert ApiToken.objects.filter(pk=token.pk).exists() and Integration.objects.filter(pk=integration.pk).exists()
    index = client.get("/admin/").content.decode()
    assert "API tokens" not in index and "Integrations" not in index and "Webhook endpoints" not in index
    assert client.get("/admin/").status_code == 200  # the rest of the admin still works for them


def test_staff_without_the_admin_role_neither_see_nor_change_connection_settings(client, staff_responder):
    service = ServiceFactory(name="Checkout", slug="checkout", database_url="env:CHECKOUT_DB")
    client.force_login(staff_responder)
    page = client.get(f"/admin/incidents/service/{service.pk}/change/").content.decode()
    assert "Checkout" in page and "CHECKOUT_DB" not in page and "database_url" not in page
    form = {"name": "Checkout", "slug": "checkout", "description": "", "owner_team": "payments"}
    response = client.post(f"/admin/incidents/service/{service.pk}/change/", {**form, "database_url": "env:SECRET_KEY"})
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.owner_team == "payments" and service.database_url == "env:CHECKOUT_DB"


def test_admins_still_edit_connection_settings(client, admin_user):
    service = ServiceFactory(name="Checkout", slug="checkout", database_url="env:CHECKOUT_DB")
    client.force_login(admin_user)
    assert "CHECKOUT_DB" in client.get(f"/admin/incidents/service/{service.pk}/change/").content.decode()


def test_the_sign_in_page_for_the_admin_is_still_the_portals(client):
    assert Client().get("/admin/opsportal/apitoken/").status_code == 302
